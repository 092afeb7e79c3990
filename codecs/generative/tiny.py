"""Tiny random-weight BLIP and Stable Diffusion folders in the real file formats (for tests and demos).

:func:`build_tiny_weights` writes <folder>/blip/ and <folder>/stable-diffusion/ with `save_pretrained`,
from configs of the same classes as the real models (BlipForConditionalGeneration, CLIPTextModel,
AutoencoderKL, UNet2DConditionModel, DDIMScheduler) shrunk to a few thousand parameters, so every line of
the user-weights path (loading, captioning, text-to-image, latent VQ, fine-tuning) runs in seconds on a CPU.
The images they make are noise: they test plumbing and bit accounting, not quality.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["build_tiny_weights", "TINY_IMAGE_SIZE"]

TINY_IMAGE_SIZE = 32  # the tiny VAE's native size: 32 px -> 4 x 16 x 16 latent
_WORDS = ("a", "photo", "of", "cat", "the", "dog", "on", "rocket", "man", "woman", "with", "coffee", "cup")


def _blip(folder: Path, seed: int) -> None:
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(specials + list(_WORDS)) + "\n")
    tokenizer = BertTokenizer(str(vocab), bos_token="[DEC]", model_max_length=64)
    torch.manual_seed(seed)
    cfg = BlipConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16),
        text_config=dict(vocab_size=len(specials) + len(_WORDS), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, encoder_hidden_size=32, bos_token_id=5,
                         pad_token_id=0, sep_token_id=3))
    BlipForConditionalGeneration(cfg).save_pretrained(folder)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                  tokenizer=tokenizer).save_pretrained(folder)


def _stable_diffusion(folder: Path, seed: int) -> None:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for w in _WORDS:
        vocab[w + "</w>"] = len(vocab)
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    tok_dir = folder / "_vocab"
    tok_dir.mkdir(exist_ok=True)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=77)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                                                num_hidden_layers=1, num_attention_heads=2,
                                                max_position_embeddings=77, projection_dim=32,
                                                bos_token_id=0, eos_token_id=1, pad_token_id=1))
    unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64),
                                layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=4, norm_num_groups=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(16, 32),
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        latent_channels=4, norm_num_groups=8, sample_size=TINY_IMAGE_SIZE)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                            safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(folder)


def build_tiny_weights(folder: str | Path, seed: int = 0) -> Path:
    """Write tiny random-weight blip/ and stable-diffusion/ folders under `folder`; returns `folder`."""
    root = Path(folder)
    _blip(root / "blip", seed)
    _stable_diffusion(root / "stable-diffusion", seed)
    return root
