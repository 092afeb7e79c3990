"""LPIPS and CLIP scores from user-supplied weights, on tiny random-weight models written in the real file formats.

Nothing here touches the network: the AlexNet / LPIPS files are random tensors saved as torchvision and the lpips
package save them, the CLIP folder is a tiny CLIPModel built from a config plus a handwritten tokenizer vocabulary.
"""

import json
import string
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from sagin_hil.codecs.images import load_images
from sagin_hil.codecs.perceptual import (
    ClipScorer,
    Lpips,
    MetricWeightsError,
    clip_image_similarity,
    load_perceptual,
    lpips_distance,
)

# torchvision AlexNet `features`: (index, out channels, in channels, kernel, stride, padding, max-pool before)
ALEX = ((0, 64, 3, 11, 4, 2, False), (3, 192, 64, 5, 1, 2, True), (6, 384, 192, 3, 1, 1, True),
        (8, 256, 384, 3, 1, 1, False), (10, 256, 256, 3, 1, 1, False))
SHIFT = np.array([-0.030, -0.088, -0.188])  # LPIPS input scaling layer (published constants)
SCALE = np.array([0.458, 0.448, 0.450])


def random_alexnet(seed: int = 0) -> dict[str, torch.Tensor]:
    """He-scaled random AlexNet conv weights under torchvision's keys, plus one classifier key that must be ignored."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for idx, out_ch, in_ch, k, *_ in ALEX:
        sd[f"features.{idx}.weight"] = torch.randn(out_ch, in_ch, k, k, generator=g) * (2.0 / (in_ch * k * k)) ** 0.5
        sd[f"features.{idx}.bias"] = 0.01 * torch.randn(out_ch, generator=g)
    sd["classifier.6.bias"] = torch.zeros(1000)
    return sd


def random_lins(seed: int = 1) -> dict[str, torch.Tensor]:
    """LPIPS linear layers as the lpips package stores them; non-negative like the trained ones."""
    g = torch.Generator().manual_seed(seed)
    return {f"lin{k}.model.1.weight": torch.rand(1, spec[1], 1, 1, generator=g) for k, spec in enumerate(ALEX)}


def tiny_clip(folder: Path) -> None:
    """A tiny random CLIPModel + CLIP tokenizer (letters only) + image processor config, saved as an HF folder."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.ascii_lowercase:  # every letter alone and as a word end: any lower-case caption tokenises
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    tower = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1, **tower),
        vision_config=dict(image_size=32, patch_size=8, **tower),
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("weights")
    (root / "lpips").mkdir()
    torch.save(random_alexnet(), root / "lpips" / "alexnet-owt-7be5be79.pth")
    torch.save(random_lins(), root / "lpips" / "alex.pth")
    tiny_clip(root / "clip")
    return root


@pytest.fixture(scope="module")
def lpips(weights_dir) -> Lpips:
    return Lpips.from_dir(weights_dir, device="cpu")


@pytest.fixture(scope="module")
def clip(weights_dir) -> ClipScorer:
    return ClipScorer.from_dir(weights_dir, device="cpu")


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [img for _, img in load_images(n=3, size=64, split="eval")]


def noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# LPIPS
# ---------------------------------------------------------------------------------------------------------------

def test_lpips_zero_for_identical_symmetric_positive(lpips, images):
    a, b = images[0], images[1]
    assert lpips(a, a) == 0.0
    assert lpips(a, b) > 0.0
    assert lpips(a, b) == pytest.approx(lpips(b, a), rel=1e-6)
    grey = a.mean(axis=2).astype(np.uint8)  # HxW grey is scored as 3 equal channels
    assert lpips(grey, grey) == 0.0 and lpips(grey, noisy(grey, 10)) > 0.0


def test_lpips_grows_with_noise_on_a_shipped_image(lpips, images):
    img = images[0]
    d = [lpips(img, noisy(img, sigma)) for sigma in (3, 10, 30, 80)]
    assert all(x < y for x, y in zip(d, d[1:])), d


def test_lpips_batched_equals_one_by_one(lpips, images):
    refs = images + [images[0][:40, :48]]  # a different size breaks the batch in two
    tests = [noisy(im, 20, seed=i) for i, im in enumerate(refs)]
    batched = lpips.distances(refs, tests, batch_size=2)
    single = [lpips(r, t) for r, t in zip(refs, tests)]
    np.testing.assert_allclose(batched, single, rtol=1e-5)
    with pytest.raises(ValueError, match="at least 31 px"):
        lpips(images[0][:30, :30], images[0][:30, :30])


def _np_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Cross-correlation of a (C, H, W) float64 map with (O, C, k, k) weights, as a window sum."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(x, w.shape[2:], axis=(1, 2))[:, ::stride, ::stride]
    return np.einsum("chwij,ocij->ohw", win, w, optimize=True) + b[:, None, None]


def _np_lpips(a: np.ndarray, b: np.ndarray, alex: dict, lins: dict) -> float:
    """LPIPS re-derived in float64 numpy from the published definition (independent of the torch code path)."""
    taps = []
    for img in (a, b):
        x = (img.astype(np.float64).transpose(2, 0, 1) / 127.5 - 1.0 - SHIFT[:, None, None]) / SCALE[:, None, None]
        layers = []
        for idx, _, _, _, stride, pad, pool in ALEX:
            if pool:
                x = sliding_window_view(x, (3, 3), axis=(1, 2))[:, ::2, ::2].max(axis=(3, 4))
            x = np.maximum(_np_conv(x, alex[f"features.{idx}.weight"].double().numpy(),
                                    alex[f"features.{idx}.bias"].double().numpy(), stride, pad), 0.0)
            layers.append(x / (np.sqrt((x**2).sum(axis=0)) + 1e-10))
        taps.append(layers)
    total = 0.0
    for k, (fa, fb) in enumerate(zip(*taps)):
        w = lins[f"lin{k}.model.1.weight"].double().numpy().reshape(-1)
        total += float(np.tensordot(w, (fa - fb) ** 2, axes=(0, 0)).mean())
    return total


def test_lpips_matches_numpy_rederivation(lpips, images):
    a, b = images[1], noisy(images[1], 25)
    assert lpips(a, b) == pytest.approx(_np_lpips(a, b, random_alexnet(), random_lins()), rel=1e-4)


def test_lpips_missing_files_say_which_and_where(tmp_path):
    with pytest.raises(MetricWeightsError, match="does not exist.*alex.pth.*alexnet-owt-7be5be79.pth"):
        Lpips.from_dir(tmp_path)
    folder = tmp_path / "lpips"
    folder.mkdir()
    torch.save(random_alexnet(), folder / "alexnet-owt-7be5be79.pth")
    with pytest.raises(MetricWeightsError, match=f"missing {folder / 'alex.pth'}"):
        Lpips.from_dir(tmp_path)
    (folder / "alexnet-owt-7be5be79.pth").unlink()
    torch.save(random_lins(), folder / "alex.pth")
    with pytest.raises(MetricWeightsError, match=f"AlexNet backbone in {folder}"):
        Lpips.from_dir(tmp_path)


def test_lpips_wrong_keys_name_the_file_and_key(tmp_path, images):
    from safetensors.torch import save_file

    folder = tmp_path / "lpips"
    folder.mkdir()
    torch.save(random_lins(), folder / "alex.pth")
    renamed = {k.replace("features.", "conv."): v for k, v in random_alexnet().items()}
    torch.save(renamed, folder / "alexnet-owt-7be5be79.pth")
    with pytest.raises(MetricWeightsError, match="-7be5be79.pth: first bad key 'features.0.weight' is missing"):
        Lpips.from_dir(folder)  # the lpips folder itself is accepted too
    (folder / "alexnet-owt-7be5be79.pth").unlink()
    save_file(random_alexnet(), str(folder / "my-alexnet.safetensors"))  # any name, safetensors format
    assert Lpips.from_dir(tmp_path, device="cpu")(images[0], images[0]) == 0.0
    lins = random_lins()
    lins["lin2.model.1.weight"] = torch.rand(1, 256, 1, 1)
    torch.save(lins, folder / "alex.pth")
    with pytest.raises(MetricWeightsError, match=r"alex.pth: first bad key 'lin2.model.1.weight' has shape \(1, 256"):
        Lpips.from_dir(tmp_path)
    (folder / "alex.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(MetricWeightsError, match="alex.pth is not a readable tensor checkpoint"):
        Lpips.from_dir(tmp_path)


def test_lpips_helper_caches_the_model(weights_dir, images):
    a = images[2]
    assert lpips_distance(a, a, weights_dir, device="cpu") == 0.0
    assert lpips_distance(a, noisy(a, 20), weights_dir, device="cpu") > 0.0


# ---------------------------------------------------------------------------------------------------------------
# CLIP
# ---------------------------------------------------------------------------------------------------------------

def test_clip_preprocessing_matches_the_hf_image_processor(clip, weights_dir, images):
    from transformers import CLIPImageProcessor

    proc = CLIPImageProcessor.from_pretrained(str(weights_dir / "clip"), local_files_only=True)
    wide = images[0][:40, :]  # non-square: shortest-side resize then centre crop
    for img in (images[1], wide):
        ref = proc(images=img, return_tensors="np")["pixel_values"][0]
        np.testing.assert_allclose(clip.preprocess(img), ref, atol=1e-5)


def test_clip_image_similarity_identical_and_range(clip, images):
    a = images[0]
    assert clip.clip_image_similarity(a, a) == pytest.approx(100.0, abs=1e-4)
    assert clip.clip_image_similarity(a, images[2]) < 99.0  # even a random tiny CLIP tells a cat from a portrait
    sims = clip.image_similarities(images, [noisy(im, 40) for im in images[::-1]])
    assert np.all((sims >= 0.0) & (sims <= 100.0))


def test_clip_score_matches_direct_model_computation(clip, weights_dir, images):
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    folder = str(weights_dir / "clip")
    model = CLIPModel.from_pretrained(folder, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    pixels = CLIPImageProcessor.from_pretrained(folder, local_files_only=True)(images=images[2], return_tensors="pt")
    captions = ["a cat on a sofa", "rocket launch"]
    with torch.no_grad():
        img = model.get_image_features(**pixels)
        txt = model.get_text_features(**tok(captions, padding=True, return_tensors="pt"))
    img, txt = getattr(img, "pooler_output", img), getattr(txt, "pooler_output", txt)
    cos = torch.nn.functional.cosine_similarity(img, txt).numpy()
    ours = (clip.image_embeddings([images[2]]) * clip.text_embeddings(captions)).sum(dim=-1).numpy()
    np.testing.assert_allclose(ours, cos, atol=1e-5)  # unclamped, so the check holds whatever the signs
    expected = 100.0 * np.maximum(cos, 0.0)
    got = [clip.clip_score(images[2], c) for c in captions]
    np.testing.assert_allclose(got, expected, atol=1e-3)
    np.testing.assert_allclose(clip.clip_scores([images[2]] * 2, captions), expected, atol=1e-3)
    assert all(0.0 <= s <= 100.0 for s in got)


def test_clip_helper(weights_dir, images):
    a = images[1]
    assert clip_image_similarity(a, a, weights_dir, device="cpu") == pytest.approx(100.0, abs=1e-4)


def test_clip_missing_and_wrong_files(tmp_path, weights_dir):
    with pytest.raises(MetricWeightsError, match=f"CLIP folder {tmp_path / 'clip'} does not exist"):
        ClipScorer.from_dir(tmp_path)
    folder = tmp_path / "clip"
    folder.mkdir()
    with pytest.raises(MetricWeightsError, match="missing .*config.json"):
        ClipScorer.from_dir(tmp_path)
    (folder / "config.json").write_text((weights_dir / "clip" / "config.json").read_text())
    with pytest.raises(MetricWeightsError, match="missing .*model.safetensors"):
        ClipScorer.from_dir(tmp_path)
    from safetensors.torch import load_file, save_file

    state = load_file(str(weights_dir / "clip" / "model.safetensors"))
    state["visual_projection.weight"] = state["visual_projection.weight"][:, :8].contiguous()
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(MetricWeightsError, match="model.safetensors: first bad key 'visual_projection.weight'"):
        ClipScorer.from_dir(tmp_path)
    del state["visual_projection.weight"]
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(MetricWeightsError, match="first bad key 'visual_projection.weight' is missing"):
        ClipScorer.from_dir(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "siglip"}))
    with pytest.raises(MetricWeightsError, match="'model_type' is 'siglip'"):
        ClipScorer.from_dir(tmp_path)


def test_clip_without_tokenizer_scores_images_but_says_what_captions_need(tmp_path, weights_dir, images):
    import shutil

    folder = tmp_path / "clip"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(weights_dir / "clip" / name, folder / name)
    scorer = ClipScorer.from_dir(tmp_path, device="cpu")
    assert scorer.clip_image_similarity(images[0], images[0]) == pytest.approx(100.0, abs=1e-4)
    with pytest.raises(MetricWeightsError, match="missing .*tokenizer.json"):
        scorer.clip_score(images[0], "a cat")


# ---------------------------------------------------------------------------------------------------------------
# Wiring
# ---------------------------------------------------------------------------------------------------------------

def test_load_perceptual_builds_both(weights_dir):
    scorers = load_perceptual(weights_dir, device="cpu")
    assert isinstance(scorers["lpips"], Lpips) and isinstance(scorers["clipscore"], ClipScorer)


def test_cli_eval_prints_lpips_and_clip(weights_dir):
    from typer.testing import CliRunner

    from sagin_hil.cli import app

    res = CliRunner().invoke(app, ["train", "eval", "jpeg2000", "--images", "2", "--size", "64", "--perceptual",
                                   "--weights-dir", str(weights_dir)])
    assert res.exit_code == 0, res.output
    rows = [line for line in res.output.splitlines() if "LPIPS" in line]
    assert len(rows) == 3 and rows[-1].startswith("mean"), res.output  # 2 images + the mean
    for row in rows:
        lp = float(row.split("LPIPS")[1].split()[0])
        ci = float(row.split("CLIP-I")[1].split()[0])
        assert lp > 0.0 and 0.0 <= ci <= 100.0


def test_mode_table_gains_lpips_and_clip_from_the_metric_weights(weights_dir):
    """`train modes --weights-dir` with lpips/ and clip/: the measured rows and the JPEG 2000 curve carry both
    metrics, and LPIPS falls (CLIP similarity rises towards 100) as JPEG 2000 gets more bits."""
    from sagin_hil.calibration.quality import build_mode_table

    table = build_mode_table(n_images=2, size=192, write=False, modes=["mode1"], weights_dir=str(weights_dir),
                             device="cpu")
    row, curve = table["modes"]["1"], table["j2k_rate_quality"]
    assert 0 < row["lpips"] < 1 and 0 <= row["clip_i"] <= 100
    assert curve["lpips"][-1] < curve["lpips"][0] and curve["clip_i"][-1] > curve["clip_i"][0]
    bare = build_mode_table(n_images=2, size=192, write=False, modes=["mode1"], device="cpu")
    assert "lpips" not in bare["modes"]["1"] and "lpips" not in bare["j2k_rate_quality"]
