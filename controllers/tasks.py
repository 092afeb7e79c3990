"""The task model: image tasks with deadlines and quality floors arriving per 3GPP FTP Model 3.

FTP traffic model 3 (3GPP TR 36.872 / TR 38.838 style): files of a fixed size arrive at each source as a
Poisson process of rate lambda (files per second); there is no reading time and a file does not wait for
the previous one. Each task draws D_max ~ U[2, 11] s and Q_min ~ U[10, 30] dB ([P000] Sec. V,
docs/references.md) unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sagin_hil.datatypes import Task

__all__ = ["FtpModel3", "TaskGenerator"]


@dataclass(frozen=True)
class FtpModel3:
    """Poisson arrivals of fixed-size files.

    Parameters
    ----------
    rate_hz: mean arrivals per second (lambda) at one source.
    file_size_bytes: size of every file (3.5 MB images in 000; 0.5 MB in the 3GPP default).
    """

    rate_hz: float
    file_size_bytes: int = 3_500_000

    def __post_init__(self) -> None:
        if not self.rate_hz > 0:
            raise ValueError(f"FtpModel3.rate_hz = {self.rate_hz!r} must be > 0 arrivals per second")
        if self.file_size_bytes <= 0:
            raise ValueError(f"FtpModel3.file_size_bytes = {self.file_size_bytes!r} must be positive")

    def arrival_times_s(self, rng: np.random.Generator, n: int | None = None, horizon_s: float | None = None,
                        start_s: float = 0.0) -> np.ndarray:
        """Arrival times: the first `n`, or all before `start_s + horizon_s` (give exactly one)."""
        if (n is None) == (horizon_s is None):
            raise ValueError("give exactly one of n (number of arrivals) or horizon_s (time window)")
        if n is not None:
            return start_s + np.cumsum(rng.exponential(1.0 / self.rate_hz, size=int(n)))
        count = rng.poisson(self.rate_hz * horizon_s)  # Poisson process: count ~ Poisson, times i.i.d. uniform
        return np.sort(start_s + rng.uniform(0.0, horizon_s, size=count))

    @property
    def offered_load_bps(self) -> float:
        return self.rate_hz * self.file_size_bytes * 8


class TaskGenerator:
    """Draw Tasks for sources (LEOs) and destinations (users).

    Parameters
    ----------
    traffic: the arrival process per source.
    sources, destinations: node names; each source has its own independent arrival process and each task
      picks a destination uniformly.
    deadline_range_s: D_max ~ U[lo, hi].
    quality_range_db: Q_min ~ U[lo, hi] (PSNR dB).
    weight_quality: xi_q of every task (xi_d = 1 - xi_q).
    seed: random seed.
    """

    def __init__(self, traffic: FtpModel3, sources: list[str], destinations: list[str],
                 deadline_range_s: tuple[float, float] = (2.0, 11.0),
                 quality_range_db: tuple[float, float] = (10.0, 30.0), weight_quality: float = 0.5,
                 seed: int | None = 0):
        for name, (lo, hi) in (("deadline_range_s", deadline_range_s), ("quality_range_db", quality_range_db)):
            if not 0 < lo <= hi:
                raise ValueError(f"{name} = {(lo, hi)} must satisfy 0 < lo <= hi")
        if not sources or not destinations:
            raise ValueError("TaskGenerator needs at least one source and one destination node name")
        self.traffic = traffic
        self.sources, self.destinations = list(sources), list(destinations)
        self.deadline_range_s, self.quality_range_db = deadline_range_s, quality_range_db
        self.weight_quality = weight_quality
        self.rng = np.random.default_rng(seed)

    def generate(self, horizon_s: float, images: list[np.ndarray] | None = None) -> list[Task]:
        """All tasks arriving in [0, horizon_s) over every source, sorted by arrival, ids 0..G-1.

        `images`, if given, are assigned round-robin (Task.image); otherwise tasks carry none.
        """
        arrivals: list[tuple[float, str]] = []
        for src in self.sources:
            arrivals += [(t, src) for t in self.traffic.arrival_times_s(self.rng, horizon_s=horizon_s)]
        arrivals.sort()
        return [self._task(i, t, src, images) for i, (t, src) in enumerate(arrivals)]

    def generate_n(self, n: int, images: list[np.ndarray] | None = None) -> list[Task]:
        """The first `n` tasks over all sources (the superposition is Poisson of rate lambda x sources)."""
        rate = self.traffic.rate_hz * len(self.sources)
        times = np.cumsum(self.rng.exponential(1.0 / rate, size=n))
        srcs = self.rng.integers(len(self.sources), size=n)
        return [self._task(i, t, self.sources[s], images) for i, (t, s) in enumerate(zip(times, srcs))]

    def _task(self, i: int, t: float, src: str, images: list[np.ndarray] | None) -> Task:
        lo_d, hi_d = self.deadline_range_s
        lo_q, hi_q = self.quality_range_db
        return Task(
            task_id=i, image=None if not images else images[i % len(images)], source=src,
            destination=self.destinations[int(self.rng.integers(len(self.destinations)))],
            arrival_s=float(t), deadline_s=float(self.rng.uniform(lo_d, hi_d)),
            quality_min_db=float(self.rng.uniform(lo_q, hi_q)),
            weight_quality=self.weight_quality, weight_delay=1.0 - self.weight_quality,
        )
