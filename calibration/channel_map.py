"""The channel map of [P004] (docs/references.md): links classified as line of sight (LoS) or not (NLoS) from
what our receivers measure, by a diffusion model used as a zero-shot density classifier, against KNN,
gradient boosting and a small neural network.

Data. Each sample is a short burst recording (0.1 s, a sounding preamble every 0.5 ms at 1 Msym/s) through the
channel emulator under a scenario drawn from a family; its features come from the calibration's own
estimator (calibration.channel_fit): Es/N0, Rician K, the fading's maximum Doppler, EVM, the echo ratio
(multipath power 1-3 symbols off the preamble's peak) and the spread of the bursts' frequency offsets.

    LoS families:  rician (flat, K ~ U[3, 15] dB)       tdl-d (NTN-TDL-D)   | tdl-c (NTN-TDL-C)
    NLoS families: rayleigh (flat)                      tdl-a (NTN-TDL-A)   | tdl-b (NTN-TDL-B)

Training uses the families left of the bar; the test split is the held-out families right of it (other
delay profiles of the same two classes), so a classifier is judged on scenarios it never saw. SNR ranges
overlap (LoS 4-22 dB, NLoS -2-16 dB), mobility (5-150 Hz fading, +-20 kHz Doppler) and CFO are drawn alike.

Diffusion classifier. A class-conditional denoiser eps(x_t, t, c) (an MLP) is trained with the DDPM loss on
standardised feature vectors; a sample is classified, with no classifier training, by the class whose
denoiser explains its noised copies best: argmin_c mean over (t, eps) of ||eps - eps(x_t, t, c)||^2, with
the same (t, eps) draws for both classes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FAMILIES", "TRAIN_FAMILIES", "TEST_FAMILIES", "FEATURES", "MAP_CLASSIFIERS", "make_dataset",
           "link_features", "sounding_features", "map_classifier", "classify_links", "DiffusionClassifier",
           "recorded_samples", "evaluate_classifiers"]

FEATURES = ("es_n0_db", "k_factor_db", "max_doppler_hz", "evm_db", "echo_db", "freq_spread_hz")
# family -> (label: 1 = LoS, channel params beyond the common draws)
FAMILIES: dict[str, tuple[int, Callable[[np.random.Generator], dict[str, Any]]]] = {
    "rician": (1, lambda r: {"k_factor_db": r.uniform(3, 15)}),
    "tdl-d": (1, lambda r: {"tdl": "NTN-TDL-D", "delay_spread_s": r.uniform(100e-9, 600e-9)}),
    "tdl-c": (1, lambda r: {"tdl": "NTN-TDL-C", "delay_spread_s": r.uniform(100e-9, 600e-9)}),
    "rayleigh": (0, lambda r: {"k_factor_db": -math.inf}),
    "tdl-a": (0, lambda r: {"tdl": "NTN-TDL-A", "delay_spread_s": r.uniform(100e-9, 600e-9)}),
    "tdl-b": (0, lambda r: {"tdl": "NTN-TDL-B", "delay_spread_s": r.uniform(100e-9, 600e-9)}),
}
TRAIN_FAMILIES = ("rician", "tdl-d", "rayleigh", "tdl-a")
TEST_FAMILIES = ("tdl-c", "tdl-b")
RS_HZ, SPS, CARRIER_HZ, DURATION_S, PERIOD_S = 1e6, 2, 2.4e9, 0.1, 0.5e-3
# `sagin-hil calibrate channel-map --per-family 150 --seed 1` wrote it; `--dataset shipped` evaluates it again
SHIPPED_DATASET = Path(__file__).parent / "tables" / "channel_map_data.npz"


def _draw(family: str, rng: np.random.Generator):
    from sagin_hil.phy.channel.emulator import ChannelParams

    label, extra = FAMILIES[family]
    snr = rng.uniform(4, 22) if label else rng.uniform(-2, 16)
    fd = rng.uniform(-20e3, 20e3)
    es_unit_db = 10 * math.log10(SPS)  # the sounding burst: Es = sps at unit power
    return ChannelParams(snr_db=snr - es_unit_db, signal_power=1.0, doppler_hz=fd,
                         delay_rate_s_per_s=-fd / CARRIER_HZ, delay_s=rng.uniform(1, 50) / (RS_HZ * SPS),
                         max_doppler_hz=rng.uniform(5, 150), cfo_ppm=rng.uniform(-2, 2), **extra(rng))


def link_features(rec) -> np.ndarray:
    """The FEATURES of one recording (calibration.channel_fit's measurements, no bootstrap)."""
    from sagin_hil.calibration.channel_fit import _fading, measure_bursts

    b = measure_bursts(rec)
    t = b.arrival / rec.sample_rate_hz
    snr, k, fm = _fading(b.gain, b.noise_var, t, b.segment, rec.preamble.size, min(50, max(b.arrival.size // 4, 2)))
    freq = b.freq_hz - np.polyval(np.polyfit(t, b.freq_hz, 1), t) if b.arrival.size > 2 else np.zeros(1)
    evm = float(np.mean(b.noise_var) / np.mean(np.abs(b.gain) ** 2))
    return np.array([10 * math.log10(max(snr, 1e-6)), float(np.clip(10 * math.log10(max(k, 1e-6)), -20, 40)),
                     fm if math.isfinite(fm) else 0.0, 10 * math.log10(evm), 10 * math.log10(float(np.mean(b.echo)) + 1e-6),
                     float(np.std(freq))])


def sounding_features(params, seed: int = 0) -> np.ndarray | None:
    """FEATURES of a link with ChannelParams `params` (its Es/N0 in snr_db, K, fading, Doppler, delay, CFO),
    measured the way the data set was: a DURATION_S sounding train at RS_HZ x SPS through the emulator, read
    back and fitted. None when no burst is detected (a link too weak to measure)."""
    import dataclasses
    import tempfile

    from sagin_hil.calibration.channel_fit import read_recording
    from sagin_hil.calibration.recordings import synthesize

    es_unit_db = 10 * math.log10(SPS)  # the sounding burst: Es = sps at unit power
    p = dataclasses.replace(params, snr_db=params.snr_db - es_unit_db, signal_power=1.0, noise_power=None)
    with tempfile.TemporaryDirectory() as tmp:
        meta = synthesize(Path(tmp) / "rec", p, carrier_hz=CARRIER_HZ, symbol_rate_hz=RS_HZ, sps=SPS,
                          duration_s=DURATION_S, burst_period_s=PERIOD_S, seed=seed)
        try:
            return link_features(read_recording(meta))
        except ValueError:
            return None


MAP_CLASSIFIERS = ("diffusion", "knn", "gradient_boosting", "neural_net")
_FITTED: dict[tuple[str, int], Any] = {}


def map_classifier(name: str = "diffusion", seed: int = 0):
    """A classifier of MAP_CLASSIFIERS fitted on every family of the shipped data set (kept in this process):
    the one a run's channel map uses. The held-out evaluation is `calibrate channel-map`."""
    if name not in MAP_CLASSIFIERS:
        raise ValueError(f"channel map classifier {name!r} is unknown; use one of {list(MAP_CLASSIFIERS)} or 'truth'")
    if (name, seed) not in _FITTED:
        data = load_dataset(SHIPPED_DATASET)
        model = _models(seed)[name]
        _FITTED[name, seed] = model.fit(data["x"], data["y"])
    return _FITTED[name, seed]


def classify_links(params: list, classifier: str = "diffusion", seed: int = 0) -> np.ndarray:
    """LoS (True) / NLoS (False) of links with ChannelParams `params`, each sounded and classified from its
    measured features; a link too weak to sound is NLoS."""
    feats = [sounding_features(p, seed + i) for i, p in enumerate(params)]
    ok = [i for i, f in enumerate(feats) if f is not None]
    out = np.zeros(len(params), bool)
    if ok:
        out[ok] = np.asarray(map_classifier(classifier, seed).predict(np.array([feats[i] for i in ok]))) == 1
    return out


def make_dataset(per_family: int, seed: int = 0, workdir: str | Path | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """per_family samples of every family: {"x": [n, len(FEATURES)], "y": LoS 1 / NLoS 0, "family": names}."""
    import tempfile

    from sagin_hil.calibration.channel_fit import read_recording
    from sagin_hil.calibration.recordings import synthesize

    rng = np.random.default_rng(seed)
    xs, ys, fams = [], [], []
    total, done = per_family * len(FAMILIES), 0
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for family in FAMILIES:
            for i in range(per_family):
                params = _draw(family, rng)
                meta = synthesize(Path(tmp) / "rec", params, carrier_hz=CARRIER_HZ, symbol_rate_hz=RS_HZ, sps=SPS,
                                  duration_s=DURATION_S, burst_period_s=PERIOD_S, seed=int(rng.integers(2**31)))
                try:
                    xs.append(link_features(read_recording(meta)))
                except ValueError:  # no burst detected: a link too weak to measure is left out
                    continue
                finally:
                    done += 1
                    if progress is not None:
                        progress(done, total)
                ys.append(FAMILIES[family][0])
                fams.append(family)
    return {"x": np.array(xs), "y": np.array(ys), "family": np.array(fams)}


class DiffusionClassifier:
    """Class-conditional DDPM denoiser on feature vectors, used as a zero-shot classifier (module docstring).

    Parameters: steps (T), hidden width, training iterations, evaluation draws (t, eps) per sample, seed.
    """

    def __init__(self, steps: int = 100, hidden: int = 128, iterations: int = 2000, draws: int = 64, seed: int = 0):
        self.T, self.hidden, self.iterations, self.draws, self.seed = steps, hidden, iterations, draws, seed
        betas = np.linspace(1e-4, 0.05, steps)
        self.alpha_bar = np.cumprod(1.0 - betas)

    def _net(self, dim: int, n_classes: int):
        import torch

        class Denoiser(torch.nn.Module):
            def __init__(self, d: int, h: int, c: int):
                super().__init__()
                self.embed_c = torch.nn.Embedding(c, h)
                self.embed_t = torch.nn.Linear(1, h)
                self.inp = torch.nn.Linear(d, h)
                self.body = torch.nn.Sequential(torch.nn.SiLU(), torch.nn.Linear(h, h), torch.nn.SiLU(),
                                                torch.nn.Linear(h, h), torch.nn.SiLU(), torch.nn.Linear(h, d))

            def forward(self, x, t, c):
                return self.body(self.inp(x) + self.embed_t(t) + self.embed_c(c))

        return Denoiser(dim, self.hidden, n_classes)

    def fit(self, x: np.ndarray, y: np.ndarray) -> DiffusionClassifier:
        import torch

        torch.manual_seed(self.seed)
        torch.set_num_threads(1)  # a small MLP: threads cost more than they give
        self.classes = np.unique(y)
        self.mean, self.std = x.mean(0), x.std(0) + 1e-9
        xt = torch.tensor((x - self.mean) / self.std, dtype=torch.float32)
        yt = torch.tensor(np.searchsorted(self.classes, y), dtype=torch.long)
        self.net = self._net(x.shape[1], len(self.classes))
        opt = torch.optim.Adam(self.net.parameters(), lr=2e-3)
        ab = torch.tensor(self.alpha_bar, dtype=torch.float32)
        gen = torch.Generator().manual_seed(self.seed)
        for _ in range(self.iterations):
            idx = torch.randint(0, len(xt), (256,), generator=gen)
            t = torch.randint(0, self.T, (256,), generator=gen)
            eps = torch.randn(256, xt.shape[1], generator=gen)
            a = ab[t][:, None]
            x_noisy = a.sqrt() * xt[idx] + (1 - a).sqrt() * eps
            loss = ((self.net(x_noisy, (t[:, None].float() / self.T), yt[idx]) - eps) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return self

    def denoising_errors(self, x: np.ndarray) -> np.ndarray:
        """[n, classes]: mean squared noise-prediction error of each class's denoiser on the same draws."""
        import torch

        gen = torch.Generator().manual_seed(self.seed + 1)
        xs = torch.tensor((x - self.mean) / self.std, dtype=torch.float32)
        n, d = xs.shape
        t = torch.randint(0, self.T, (self.draws,), generator=gen)
        eps = torch.randn(self.draws, d, generator=gen)
        a = torch.tensor(self.alpha_bar, dtype=torch.float32)[t][:, None]
        x_noisy = a.sqrt()[None] * xs[:, None, :] + (1 - a).sqrt()[None] * eps[None]  # [n, draws, d]
        tt = (t.float() / self.T)[None, :, None].expand(n, -1, 1)
        out = np.zeros((n, len(self.classes)))
        with torch.no_grad():
            for j in range(len(self.classes)):
                c = torch.full((n, self.draws), j, dtype=torch.long)
                pred = self.net(x_noisy.reshape(-1, d), tt.reshape(-1, 1), c.reshape(-1)).reshape(n, self.draws, d)
                out[:, j] = ((pred - eps[None]) ** 2).mean((1, 2)).numpy()
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes[np.argmin(self.denoising_errors(x), axis=1)]


def _scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    tp = int(np.sum((pred == 1) & (y == 1)))
    fp = int(np.sum((pred == 1) & (y == 0)))
    fn = int(np.sum((pred == 0) & (y == 1)))
    recall = tp / max(tp + fn, 1)
    precision = tp / max(tp + fp, 1)
    return {"accuracy": float(np.mean(pred == y)), "recall": recall,
            "f1": 2 * precision * recall / max(precision + recall, 1e-12)}


def _models(seed: int, diffusion_iterations: int = 2000) -> dict[str, Any]:
    """The four classifiers, unfitted (MAP_CLASSIFIERS order)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "diffusion": DiffusionClassifier(iterations=diffusion_iterations, seed=seed),
        "knn": make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=7)),
        "gradient_boosting": HistGradientBoostingClassifier(random_state=seed),
        "neural_net": make_pipeline(StandardScaler(), MLPClassifier((32, 32), max_iter=2000, random_state=seed)),
    }


def recorded_samples(labelled: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    """Samples from recordings the user labelled: [(label "los" | "nlos", path of a SigMF recording with our
    preamble or one its metadata describes)], each recording one sample of FEATURES (record about DURATION_S
    of bursts every PERIOD_S, as the data set does), family "recorded"."""
    from sagin_hil.calibration.channel_fit import read_recording

    xs, ys = [], []
    for label, path in labelled:
        if label not in ("los", "nlos"):
            raise ValueError(f"recording {path}: label {label!r}; give los=PATH or nlos=PATH")
        try:
            xs.append(link_features(read_recording(path)))
        except ValueError as exc:
            raise ValueError(f"recording {path}: {exc}") from None
        ys.append(int(label == "los"))
    return {"x": np.array(xs).reshape(len(xs), len(FEATURES)), "y": np.array(ys, int),
            "family": np.array(["recorded"] * len(xs))}


def evaluate_classifiers(data: dict[str, np.ndarray], seed: int = 0, diffusion_iterations: int = 2000,
                         recorded: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Train every classifier on TRAIN_FAMILIES, score on the held-out TEST_FAMILIES (LoS = positive class):
    accuracy, F1, recall and the latency per sample (ms, batch of the whole test split); with `recorded`
    (recorded_samples), also each one's scores on those recordings ("recorded")."""
    train = np.isin(data["family"], TRAIN_FAMILIES)
    test = np.isin(data["family"], TEST_FAMILIES)
    xtr, ytr, xte, yte = data["x"][train], data["y"][train], data["x"][test], data["y"][test]
    models = _models(seed, diffusion_iterations)
    out: dict[str, Any] = {"features": list(FEATURES), "train_families": list(TRAIN_FAMILIES),
                           "test_families": list(TEST_FAMILIES), "train_samples": int(train.sum()),
                           "test_samples": int(test.sum()), "classifiers": {}}
    for name, model in models.items():
        t0 = time.perf_counter()
        model.fit(xtr, ytr)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = model.predict(xte)
        latency_ms = 1e3 * (time.perf_counter() - t0) / max(len(xte), 1)
        out["classifiers"][name] = {**_scores(yte, np.asarray(pred)), "latency_ms_per_sample": latency_ms,
                                    "train_s": fit_s, "train_accuracy": float(np.mean(model.predict(xtr) == ytr))}
        if recorded is not None and len(recorded["y"]):
            out["classifiers"][name]["recorded"] = _scores(recorded["y"], np.asarray(model.predict(recorded["x"])))
    if recorded is not None:
        out["recorded_samples"] = int(len(recorded["y"]))
    return out


def save_dataset(data: dict[str, np.ndarray], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(p, x=data["x"], y=data["y"], family=data["family"], features=np.array(FEATURES))
    return p


def load_dataset(path: str | Path) -> dict[str, np.ndarray]:
    d = np.load(path, allow_pickle=False)
    if tuple(d["features"]) != FEATURES:
        raise ValueError(f"{path} holds features {list(d['features'])}; this version uses {list(FEATURES)}: rebuild it")
    return {"x": d["x"], "y": d["y"], "family": d["family"]}


def write_report(result: dict[str, Any], out_dir: str | Path) -> Path:
    """channel_map.json and a bar chart of accuracy / F1 / recall per classifier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "channel_map.json").write_text(json.dumps(result, indent=2))
    names = list(result["classifiers"])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for i, metric in enumerate(("accuracy", "f1", "recall")):
        ax.bar(np.arange(len(names)) + (i - 1) * 0.27, [result["classifiers"][n][metric] for n in names], 0.27,
               label=metric)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"LoS / NLoS on held-out scenario families {', '.join(result['test_families'])}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "channel_map.png", dpi=110)
    plt.close(fig)
    return out / "channel_map.json"
