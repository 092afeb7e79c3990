"""Per-image outcomes of SPIFF over a grid of configurations, measured once so the engine can learn cheaply.

For every person image (codecs/generative/spiff_images.py: train = astronaut + camera variants, eval =
grace_hopper variants, held out) and every configuration (beta, p(0)) of :data:`BETAS` x :data:`KEEPS`, SPIFF
encodes and decodes the image with :data:`SAMPLE_SEEDS` patch-sampling seeds (the outcome is random: which
patches are kept decides what the inpainter sees), and the table stores the payload bits (caption off; the
caption's bits are stored apart and added when it is on), PF and SF per relevance rank, and the codec times.
Beside them, per image: the reference size (the image as a quality-95 JPEG file, "the original" of the bandwidth
saving), the JPEG quality-45 baseline and the caption-only baseline (caption + the mean colour; offline its
receiver can only paint that colour).

The engine then learns on this table with network states sampled per step (engine.py): a configuration the
actor proposes is looked up at the nearest grid point, one of its seeds drawn at random.

The table is written after every image to a JSON file, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sagin_hil.codecs.generative.spiff_images import PERSON_HELD_OUT, person_images

__all__ = ["BETAS", "KEEPS", "SAMPLE_SEEDS", "build_outcomes", "load_outcomes", "hold_out", "subject_of", "OUTCOMES_PATH",
           "jpeg_bits_and_image", "image_features", "HIGH_FRACTION_RANGE", "DEFAULT_HELD_OUT"]

BETAS: tuple[float, ...] = (0.0, 1 / 3, 2 / 3, 1.0)
KEEPS: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75)
SAMPLE_SEEDS: tuple[int, ...] = (0, 1)
HIGH_FRACTION_RANGE = (0.15, 0.8)  # images whose person share the segmenter puts in this range (paper: 20-60 %)
REFERENCE_JPEG_QUALITY = 95
BASELINE_JPEG_QUALITY = 45
OUTCOMES_PATH = Path(__file__).parent / "weights" / "outcomes.json"
DEFAULT_HELD_OUT = PERSON_HELD_OUT[0]  # the project's held-out photograph (codecs/images.py)


def jpeg_bits_and_image(image: np.ndarray, quality: int) -> tuple[int, np.ndarray]:
    """Pillow's baseline JPEG at `quality`: (file size in bits, decoded uint8 image)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(quality))
    data = buf.getvalue()
    return 8 * len(data), np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def image_features(image: np.ndarray, ranks: np.ndarray) -> list[float]:
    """The engine's image state: the share of each rank (R = 2: low, high) and the low-rank region's texture
    (mean gradient magnitude / 32 levels: busy backgrounds inpaint worse)."""
    from skimage.color import rgb2gray
    from skimage.filters import sobel

    grad = sobel(rgb2gray(image)) * 255.0
    low = ranks == 0
    texture = float(grad[low].mean() / 32.0) if low.any() else 0.0
    return [float((ranks == 0).mean()), float((ranks == 1).mean()), texture]


def caption_only(image: np.ndarray, caption: str) -> tuple[int, np.ndarray]:
    """The caption-only baseline offline: SG header (10 bytes) + caption + mean colour; the receiver paints it."""
    bits = 8 * (10 + len(caption.encode()) + 3)
    mean = np.asarray(image, float).reshape(-1, image.shape[-1]).mean(0)
    return bits, np.broadcast_to(np.rint(mean).astype(np.uint8), image.shape).copy()


def _r(values: list[float]) -> list[float]:
    return [round(float(v), 4) for v in values]


def _measure_image(tag: str, img: np.ndarray, codec: Any, scorer: Any) -> dict[str, Any] | None:
    from sagin_hil.codecs.generative.spiff import template_caption

    labels, ranks = codec.ranks(img)
    high = float((ranks == 1).mean())
    if not HIGH_FRACTION_RANGE[0] <= high <= HIGH_FRACTION_RANGE[1]:
        return None
    ref_bits, _ = jpeg_bits_and_image(img, REFERENCE_JPEG_QUALITY)
    jb, jimg = jpeg_bits_and_image(img, BASELINE_JPEG_QUALITY)
    caption = template_caption(ranks, labels)
    cb, cimg = caption_only(img, caption)
    row: dict[str, Any] = {
        "tag": tag, "features": image_features(img, ranks), "ref_bits": ref_bits,
        "caption_bits": 8 * len(caption.encode()), "caption": caption,
        "jpeg": {"bits": jb, **scorer.per_rank(img, jimg, ranks, 2)},
        "caption_only": {"bits": cb, **scorer.per_rank(img, cimg, ranks, 2)},
        "grid": [],  # [beta index][keep index][seed] -> outcome
    }
    seen: dict[tuple, dict[str, Any]] = {}  # configurations that send the same pixels share one outcome
    for beta in BETAS:
        per_keep = []
        for keep in KEEPS:
            per_seed = []
            for seed in SAMPLE_SEEDS:
                c = codec.with_config(beta=beta, keep=(keep,), seed=seed)
                box = c._box(ranks == 1)
                key = (box, c._kept_cells(ranks, box).tobytes())
                if key not in seen:
                    pay = c.encode(img)
                    t = time.perf_counter()
                    out = c.decode(pay.data)
                    dec_s = time.perf_counter() - t
                    f = scorer.per_rank(img, out, ranks, 2)
                    seen[key] = {"bits": pay.n_bits, "pf": _r(f["pf"]), "sf": _r(f["sf"]),
                                 "encode_s": round(pay.encode_time_s, 4), "decode_s": round(dec_s, 4)}
                per_seed.append(seen[key])
            per_keep.append(per_seed)
        row["grid"].append(per_keep)
    return row


_WORKER: dict[str, Any] = {}


def _measure_task(task: tuple[str, str, np.ndarray]) -> tuple[str, str, dict[str, Any] | None]:
    """One image in a worker process (its codec and scorer built once per process)."""
    from sagin_hil.codecs.generative.spiff import SpiffCodec
    from sagin_hil.codecs.generative.spiff_fidelity import FidelityScorer

    if not _WORKER:
        _WORKER.update(codec=SpiffCodec(), scorer=FidelityScorer())
    split, tag, img = task
    return split, tag, _measure_image(tag, img, _WORKER["codec"], _WORKER["scorer"])


def build_outcomes(path: str | Path = OUTCOMES_PATH, size: int = 256, splits: tuple[str, ...] = ("train", "eval"),
                   limit: int | None = None, workers: int = 1,
                   progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Measure (or resume measuring) the outcome table into `path`, over `workers` processes; `limit` images
    per split (tests)."""
    from sagin_hil.codecs.generative.spiff_fidelity import FidelityScorer

    if workers < 1:
        raise ValueError(f"workers = {workers}; use 1 or more processes")
    path = Path(path)
    table: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    grid = {"betas": list(BETAS), "keeps": list(KEEPS), "seeds": list(SAMPLE_SEEDS), "size_px": size}
    if table.get("grid") != grid:
        table = {"grid": grid, "skipped": [], "images": {s: [] for s in splits}}
    scorer = FidelityScorer()
    table["metrics"], table["proxy"] = list(scorer.names), scorer.proxy
    done = {r["tag"] for s in splits for r in table["images"].get(s, [])} | set(table["skipped"])
    todo = [(s, tag, img) for s in splits for tag, img in person_images(s, size)[:limit] if tag not in done]
    total, n_done = len(todo) + len(done), len(done)

    def save() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(table))
        tmp.replace(path)

    def store(split: str, tag: str, row: dict[str, Any] | None) -> None:
        if row is None:
            table["skipped"].append(tag)
        else:
            table["images"].setdefault(split, []).append(row)
        save()  # after every image: a re-run resumes here

    if workers == 1:
        results = map(_measure_task, todo)
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers)
        results = pool.imap_unordered(_measure_task, todo)
    for split, tag, row in results:
        store(split, tag, row)
        n_done += 1
        if progress:
            progress(n_done, total, tag)
    if workers > 1:
        pool.close()
    for s in splits:  # a fixed order whatever order the workers finished in
        table["images"][s].sort(key=lambda r: r["tag"])
    save()
    return table


def load_outcomes(path: str | Path | None = None) -> dict[str, Any]:
    """The stored outcome table; build it with `sagin-hil train spiff`."""
    p = Path(path) if path is not None else OUTCOMES_PATH
    if not p.exists():
        raise FileNotFoundError(f"no SPIFF outcome table at {p}; measure it with `sagin-hil train spiff`")
    return json.loads(p.read_text())


def subject_of(row: dict[str, Any]) -> str:
    """The photograph an outcome row's image is a variant of ("astronaut@0.85:0.0,0.5:flip" -> "astronaut")."""
    return row["tag"].split("@", 1)[0]


def hold_out(table: dict[str, Any], subject: str = DEFAULT_HELD_OUT) -> dict[str, Any]:
    """The outcome table re-split to leave one photograph out: its variants are the "eval" images, every other
    photograph's the "train" ones (tag order, as measured). The default subject keeps the table's own split (the
    one it was measured with); the others give the folds of a leave-one-subject-out evaluation (docs/spiff.md)."""
    if subject == DEFAULT_HELD_OUT:
        return {**table, "held_out": subject}
    rows = sorted((r for split in table["images"].values() for r in split), key=lambda r: r["tag"])
    subjects = sorted({subject_of(r) for r in rows})
    if subject not in subjects:
        raise ValueError(f"held-out subject {subject!r} has no images in the outcome table; use one of "
                         f"{', '.join(subjects)}")
    return {**table, "held_out": subject, "images": {"train": [r for r in rows if subject_of(r) != subject],
                                                      "eval": [r for r in rows if subject_of(r) == subject]}}
