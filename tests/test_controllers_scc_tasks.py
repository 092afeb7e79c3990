"""SCC (Eq. 14) values and normalisation; FTP Model 3 arrivals against Poisson theory."""

import math

import numpy as np
import pytest
from scipy import stats

from sagin_hil.controllers.scc import scc_weight, scc_weights
from sagin_hil.controllers.tasks import FtpModel3, TaskGenerator
from sagin_hil.datatypes import Task


def _task(d_max=10.0, q_min=20.0, xi_q=0.5):
    return Task(task_id=0, image=None, source="leo0", destination="user0", deadline_s=d_max,
                quality_min_db=q_min, weight_quality=xi_q, weight_delay=1 - xi_q)


def test_scc_values_by_hand():
    # Q_norm = (35 - 20) / (50 - 20) = 0.5, D_norm = (10 - 4) / 10 = 0.6
    assert scc_weight(_task(), 4.0, 35.0) == pytest.approx(0.5 * 0.5 + 0.5 * 0.6)
    assert scc_weight(_task(xi_q=0.8), 4.0, 35.0) == pytest.approx(0.8 * 0.5 + 0.2 * 0.6)
    assert scc_weight(_task(), 0.0, 50.0) == pytest.approx(1.0)
    assert scc_weight(_task(), 0.0, math.inf) == pytest.approx(1.0)  # lossless copy is capped
    assert scc_weight(_task(), 10.0, 20.0) == 0.0  # on both limits: no margin
    assert scc_weight(_task(), 10.5, 40.0) == 0.0  # late
    assert scc_weight(_task(), 1.0, 19.0) == 0.0  # below the floor
    assert scc_weight(_task(), 10.5, 40.0, strict=False) == pytest.approx(0.5 * 20 / 30)
    assert scc_weight(_task(), math.nan, 40.0) == 0.0


def test_scc_bounded_and_monotone():
    rng = np.random.default_rng(1)
    d, q = rng.uniform(0, 15, 1000), rng.uniform(0, 60, 1000)
    w = scc_weights(d, q, np.full(1000, 10.0), np.full(1000, 20.0))
    assert np.all((w >= 0) & (w <= 1))
    ok = (d <= 10) & (q >= 20)
    w2 = scc_weights(d * 0.9, q + 1, np.full(1000, 10.0), np.full(1000, 20.0))
    assert np.all(w2[ok] >= w[ok] - 1e-12)
    with pytest.raises(ValueError, match="quality_min_db"):
        scc_weights([1.0], [30.0], [5.0], [55.0])


def test_ftp3_interarrivals_are_exponential():
    rng = np.random.default_rng(2)
    t = FtpModel3(rate_hz=2.0).arrival_times_s(rng, n=4000)
    gaps = np.diff(np.concatenate([[0.0], t]))
    assert gaps.mean() == pytest.approx(0.5, rel=4 * 0.5 / math.sqrt(4000) / 0.5)
    assert stats.kstest(gaps, "expon", args=(0, 0.5)).pvalue > 1e-3


def test_ftp3_counts_are_poisson_in_a_window():
    rng = np.random.default_rng(3)
    counts = np.array([len(FtpModel3(rate_hz=3.0).arrival_times_s(rng, horizon_s=2.0)) for _ in range(2000)])
    assert counts.mean() == pytest.approx(6.0, abs=4 * math.sqrt(6.0 / 2000))
    assert counts.var() == pytest.approx(6.0, rel=0.15)  # Poisson: variance = mean


def test_task_generator_draws_qos_from_the_paper_ranges():
    gen = TaskGenerator(FtpModel3(rate_hz=1.0), ["leo0", "leo1"], ["user0", "user1", "user2"], seed=4)
    tasks = gen.generate(horizon_s=200.0)
    assert abs(len(tasks) - 400) < 4 * math.sqrt(400)
    arr = np.array([t.arrival_s for t in tasks])
    assert np.all(np.diff(arr) >= 0) and [t.task_id for t in tasks] == list(range(len(tasks)))
    d = np.array([t.deadline_s for t in tasks])
    q = np.array([t.quality_min_db for t in tasks])
    assert d.min() >= 2 and d.max() <= 11 and stats.kstest(d, "uniform", args=(2, 9)).pvalue > 1e-3
    assert q.min() >= 10 and q.max() <= 30 and stats.kstest(q, "uniform", args=(10, 20)).pvalue > 1e-3
    assert {t.source for t in tasks} == {"leo0", "leo1"}
    assert len(gen.generate_n(7)) == 7
    with pytest.raises(ValueError, match="rate_hz"):
        FtpModel3(rate_hz=0.0)
