"""SPIFF codec (paper 003): exact bit accounting, kept pixels bit-exact after decoding, configuration effects,
clear errors, the offline segmenter on hand-labelled people, and the user-weights path with tiny random models
saved in the real formats."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sagin_hil.codecs.base import Budget, CodecError
from sagin_hil.codecs.generative.spiff import SpiffCodec, SpiffConfig
from sagin_hil.codecs.jpeg2000 import Jpeg2000Codec


@pytest.fixture(scope="module")
def person():
    from sagin_hil.codecs.generative.spiff_images import person_images

    return dict(person_images("train", 256))["camera@0.85:0.5,0.5:flip"]  # person ~29 % of the frame


@pytest.fixture(scope="module")
def codec():
    return SpiffCodec()


def _independent_recomposition(codec, data):
    """The kept pixels as the JPEG 2000 decoder makes them of the payload's own parts (not via SpiffCodec.decode)."""
    parts = codec.demux(data)
    p = parts.patch_px
    want = np.zeros((parts.height, parts.width, 3), np.int16) - 1
    x0, y0, x1, y1 = parts.box
    if x1 > x0:
        want[y0:y1, x0:x1] = Jpeg2000Codec().decode(parts.crop)
    cells = np.argwhere(parts.kept_cells)
    if len(cells):
        tiles = Jpeg2000Codec().decode(parts.grid)
        cols = int(np.ceil(np.sqrt(len(cells))))
        for k, (r, c) in enumerate(cells):
            tr, tc = divmod(k, cols)
            h = min(p, parts.height - r * p)
            w = min(p, parts.width - c * p)
            want[r * p : r * p + h, c * p : c * p + w] = tiles[tr * p : tr * p + h, tc * p : tc * p + w]
    return want


def test_every_part_of_the_payload_is_counted_and_the_parts_sum_to_its_size(codec, person):
    pay = codec.with_config(beta=0.0, keep=(0.2,), caption=True).encode(person)
    bits = pay.metadata["bits"]
    assert sum(bits.values()) == pay.n_bits == 8 * len(pay.data)
    parts = codec.demux(pay.data)
    assert parts.bits == bits
    assert bits["crop"] == 8 * len(parts.crop) > 0 and bits["grid"] == 8 * len(parts.grid) > 0
    assert bits["caption"] == 8 * len(pay.metadata["caption"].encode()) > 0 and parts.caption == pay.metadata["caption"]
    # one mask bit per patch of the 16 x 16 grid, packed (deflated only when that is shorter)
    assert bits["mask"] <= 8 * int(np.ceil(16 * 16 / 8))
    assert parts.kept_cells.sum() == pay.metadata["kept_patches"]
    no_caption = codec.with_config(beta=0.0, keep=(0.2,), caption=False).encode(person)
    assert pay.n_bits - no_caption.n_bits == bits["caption"]


def test_kept_pixels_are_bit_exact_after_decoding(codec, person):
    pay = codec.with_config(beta=0.0, keep=(0.3,)).encode(person)
    out = codec.decode(pay.data)
    want = _independent_recomposition(codec, pay.data)
    known = want[:, :, 0] >= 0
    assert 0.3 < known.mean() < 0.95
    np.testing.assert_array_equal(out[known], want[known].astype(np.uint8))
    # the missing pixels were filled with something close to the image, not left blank
    err = np.abs(out[~known].astype(float) - person[~known].astype(float)).mean()
    assert err < 0.5 * np.abs(person[~known].astype(float) - 128).mean()


def test_beta_and_keep_trade_bits_for_kept_pixels(codec, person):
    sizes = {}
    for beta, keep in [(0.0, 0.0), (0.0, 0.5), (1.0, 0.0)]:
        pay = codec.with_config(beta=beta, keep=(keep,)).encode(person)
        sizes[(beta, keep)] = (pay.n_bits, pay.metadata["kept_pixel_fraction"])
    assert sizes[(0.0, 0.0)][0] < sizes[(0.0, 0.5)][0] and sizes[(0.0, 0.0)][1] < sizes[(0.0, 0.5)][1]
    assert sizes[(1.0, 0.0)][1] == 1.0  # beta = 1: the box is the whole frame
    box = codec.with_config(beta=0.0, keep=(0.0,)).encode(person).metadata["box"]
    high = codec.ranks(person)[1] == 1
    ys, xs = np.nonzero(high)
    assert box[0] <= xs.min() and box[1] <= ys.min() and box[2] > xs.max() and box[3] > ys.max()
    assert all(v % 16 == 0 or v in (256,) for v in box)


def test_bad_configuration_budget_and_payload_are_clear_errors(codec, person):
    with pytest.raises(CodecError, match="beta = 1.5"):
        SpiffConfig(beta=1.5)
    with pytest.raises(CodecError, match="keep = "):
        SpiffConfig(keep=(1.2,))
    with pytest.raises(CodecError, match="one per rank below the top"):
        SpiffCodec(keep=(0.1, 0.2))
    with pytest.raises(ValueError, match="gives no rank for"):
        SpiffCodec(relevance={"person": 1})
    with pytest.raises(CodecError, match=r"exceeds Budget\(bits=4000\)"):
        codec.encode(person, Budget(bits=4000))
    pay = codec.with_config(keep=(0.1,)).encode(person)
    with pytest.raises(CodecError, match="truncated"):
        codec.decode(pay.data[: len(pay.data) // 2])
    bad = bytearray(pay.data)
    bad[6] ^= 0xFF
    with pytest.raises(CodecError, match="CRC"):
        codec.decode(bytes(bad))


def test_offline_segmenter_finds_the_hand_labelled_people():
    from sagin_hil.codecs.generative.segment import person_box_agreement

    agree = person_box_agreement()
    for name, a in agree.items():  # every person found, its pixels mostly inside the hand-drawn box
        assert a["found"] == 1.0 and a["precision"] > 0.85, (name, a)
    assert np.mean([a["box_iou"] for a in agree.values()]) > 0.6


def test_relevance_map_is_configurable():
    from sagin_hil.codecs.generative.segment import relevance_map

    labels = np.array([[0, 1], [1, 0]], np.uint8)
    np.testing.assert_array_equal(relevance_map(labels), labels)
    np.testing.assert_array_equal(relevance_map(labels, {"other": 1, "person": 0}), 1 - labels)


def test_fidelity_per_rank_sees_only_that_rank():
    from sagin_hil.codecs.generative.spiff_fidelity import FidelityScorer

    rng = np.random.default_rng(0)
    ref = (rng.random((192, 192, 3)) * 255).astype(np.uint8)
    ranks = np.zeros((192, 192), np.uint8)
    ranks[:, 96:] = 1
    test = ref.copy()
    test[:, 96:] = 128  # only the high-rank half is damaged
    f = FidelityScorer().per_rank(ref, test, ranks, 2)
    assert f["pf"][0] == pytest.approx(1.0) and f["sf"][0] == pytest.approx(1.0)
    assert f["pf"][1] < 0.5


# ---- the user's models: tiny random ones built from configs and saved as the real formats --------------------

def _tiny_weights(root):
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    seg = SegformerForSemanticSegmentation(SegformerConfig(
        num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
        num_attention_heads=[1, 2], mlp_ratios=[2, 2], decoder_hidden_size=16, patch_sizes=[7, 3], strides=[4, 2],
        num_labels=2, id2label={0: "background", 1: "person"}, label2id={"background": 0, "person": 1}))
    with torch.no_grad():  # a random head says "person" nowhere, so patches are sampled and the rest inpainted
        seg.decode_head.classifier.bias.copy_(torch.tensor([4.0, -4.0]))
    seg.save_pretrained(root / "segmentation")
    (root / "segmentation" / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "size": {"height": 64, "width": 64}}))
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
                                        pad_token_id=1))
    tok.model_max_length = 16
    unet = UNet2DConditionModel(sample_size=8, in_channels=9, out_channels=4, layers_per_block=1,
                                block_out_channels=(16, 32), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=4, norm_num_groups=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), block_out_channels=(8, 16),
                        latent_channels=4, norm_num_groups=8, sample_size=64)
    pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=DDIMScheduler(steps_offset=1),
                                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(root / "stable-diffusion-inpainting")
    return root


def test_user_models_run_end_to_end_and_kept_pixels_survive_the_vae(tmp_path, person):
    from skimage.transform import resize

    root = _tiny_weights(tmp_path / "weights")
    codec = SpiffCodec(weights_dir=root, device="cpu", inpaint_steps=2, beta=0.0, keep=(0.3,), caption=True)
    img = np.clip(resize(person, (96, 96), preserve_range=True), 0, 255).astype(np.uint8)
    assert type(codec.segmenter).__name__ == "TransformersSegmenter"
    pay = codec.encode(img)
    assert sum(pay.metadata["bits"].values()) == pay.n_bits
    out = codec.decode(pay.data)
    assert out.shape == img.shape and out.dtype == np.uint8
    want = _independent_recomposition(codec, pay.data)
    known = want[:, :, 0] >= 0
    assert 0.1 < known.mean() < 0.6 and pay.metadata["box"] == (0, 0, 0, 0)
    np.testing.assert_array_equal(out[known], want[known].astype(np.uint8))
    from sagin_hil.codecs.generative.inpaint import PyramidInpainter

    canvas = np.where(known[:, :, None], want, 0).astype(np.uint8)  # the diffusion model painted the rest
    assert not np.array_equal(out[~known], PyramidInpainter().inpaint(canvas, known)[~known])


def test_missing_user_weights_name_the_files_to_provide(tmp_path, person):
    from sagin_hil.codecs.generative.weights import GenerativeWeightsError

    (tmp_path / "segmentation").mkdir()
    codec = SpiffCodec(weights_dir=tmp_path)
    with pytest.raises(GenerativeWeightsError, match=r"segmentation/config.json.*\n.*segmentation/model.safetensors or"):
        codec.encode(person)
    with pytest.raises(GenerativeWeightsError, match=r"stable-diffusion-inpainting.*does not exist.*\n.*model_index.json"):
        codec.inpainter


def test_grey_and_odd_sized_images_round_trip(codec):
    from sagin_hil.codecs.images import load_images

    img = load_images(1, 100, "eval")[0][1][:90]  # 90 x 100: the patch grid overhangs both edges
    for x in (img, np.ascontiguousarray(img[:, :, 0])):
        pay = codec.encode(x)
        out = codec.decode(pay.data)
        assert out.shape == x.shape and out.dtype == np.uint8
        assert sum(pay.metadata["bits"].values()) == pay.n_bits
    empty = codec.with_config(keep=(0.0,)).encode(img)  # no person, nothing kept: header + mask only
    assert empty.metadata["bits"]["crop"] == empty.metadata["bits"]["grid"] == 0
    assert codec.decode(empty.data).shape == img.shape
