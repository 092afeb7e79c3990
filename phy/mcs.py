"""Modulation and coding schemes (MCS): the menu a link adaptation controller chooses from.

Names are "<modulation>-<code rate>", e.g. "qpsk-1/2". Rates follow the DVB-S2 / 5G NR style fractions.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

__all__ = ["Mcs", "MCS_TABLE", "get_mcs", "BITS_PER_SYMBOL"]

BITS_PER_SYMBOL = {"bpsk": 1, "qpsk": 2, "8psk": 3, "16qam": 4, "16apsk": 4, "32apsk": 5, "64qam": 6}


@dataclass(frozen=True)
class Mcs:
    """One modulation and code rate; `spectral_efficiency` is information bits per channel symbol."""

    name: str
    modulation: str
    code_rate: float

    @property
    def bits_per_symbol(self) -> int:
        return BITS_PER_SYMBOL[self.modulation]

    @property
    def spectral_efficiency(self) -> float:
        return self.bits_per_symbol * self.code_rate


def _mcs(modulation: str, rate: str) -> Mcs:
    return Mcs(f"{modulation}-{rate}", modulation, float(Fraction(rate)))


# Ordered by spectral efficiency: the controller walks this list.
MCS_TABLE: tuple[Mcs, ...] = (
    _mcs("bpsk", "1/2"),
    _mcs("qpsk", "1/3"),
    _mcs("qpsk", "1/2"),
    _mcs("qpsk", "2/3"),
    _mcs("qpsk", "3/4"),
    _mcs("8psk", "2/3"),
    _mcs("16qam", "1/2"),
    _mcs("16qam", "2/3"),
    _mcs("16qam", "3/4"),
    _mcs("64qam", "2/3"),
    _mcs("64qam", "3/4"),
)

_BY_NAME = {m.name: m for m in MCS_TABLE}


def get_mcs(name: str) -> Mcs:
    """The MCS called `name`; raises ValueError listing the valid names."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown MCS {name!r}; choose one of: {', '.join(_BY_NAME)}") from None
