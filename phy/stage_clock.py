"""CPU time per stage of a chain (detection, synchronisation, LDPC, ...), for `sagin-hil bench rx`.

Thread CPU time, not wall time: on a shared machine other jobs must not move the split.

A chain holds a StageClock and wraps each stage in `with clock("name"):`; a disabled clock (the default)
costs one attribute test per stage, so the chains carry it always.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

__all__ = ["StageClock"]

_OFF = nullcontext()


class _Span:
    __slots__ = ("clock", "name", "t0")

    def __init__(self, clock: "StageClock", name: str):
        self.clock, self.name = clock, name

    def __enter__(self):
        self.t0 = time.thread_time()

    def __exit__(self, *exc):
        s = self.clock.seconds
        s[self.name] = s.get(self.name, 0.0) + time.thread_time() - self.t0


class StageClock:
    """Accumulated CPU seconds per stage name; `enabled` False makes every span a no-op.

    A span nested in another counts in both: name stages so that they do not nest (the chains here don't).
    """

    def __init__(self, enabled: bool = False):
        self.enabled = enabled
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str):
        return _Span(self, name) if self.enabled else _OFF

    def reset(self) -> None:
        self.seconds = {}
