"""Where the user's pretrained generative models go, and the error that says exactly which files are missing.

Nothing is downloaded: the generative codecs read Hugging Face-format folders (what `save_pretrained` writes)
from the folder given as `[codecs] weights_dir` / `--weights-dir`:

    <weights-dir>/blip/               BLIP captioning (transformers BlipForConditionalGeneration + BlipProcessor)
    <weights-dir>/stable-diffusion/   Stable Diffusion (diffusers StableDiffusionPipeline: unet, vae,
                                      text_encoder, tokenizer, scheduler)

:func:`require` checks a component's files before anything heavy is imported; a missing folder or file raises
:class:`GenerativeWeightsError` listing what is missing and the whole layout to provide. Other codecs (e.g.
an inpainting pipeline) add their own component to :data:`LAYOUTS` or pass a layout to :func:`require`.
"""

from __future__ import annotations

from pathlib import Path

from sagin_hil.codecs.base import CodecError

__all__ = ["GenerativeWeightsError", "LAYOUTS", "require", "describe_layout"]

# Each entry is one required file; a tuple lists interchangeable names (any one is enough).
_DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
LAYOUTS: dict[str, dict[str, tuple[str, ...]]] = {
    "blip": {
        "config.json": ("config.json",),
        "weights": ("model.safetensors", "pytorch_model.bin"),
        "image processor": ("processor_config.json", "preprocessor_config.json"),
        "tokenizer_config.json": ("tokenizer_config.json",),
        "vocabulary": ("tokenizer.json", "vocab.txt"),
    },
    "stable-diffusion": {
        "model_index.json": ("model_index.json",),
        "unet/config.json": ("unet/config.json",),
        "unet weights": tuple(f"unet/{n}" for n in _DIFFUSERS_WEIGHTS),
        "vae/config.json": ("vae/config.json",),
        "vae weights": tuple(f"vae/{n}" for n in _DIFFUSERS_WEIGHTS),
        "text_encoder/config.json": ("text_encoder/config.json",),
        "text_encoder weights": ("text_encoder/model.safetensors", "text_encoder/pytorch_model.bin"),
        "tokenizer": ("tokenizer/tokenizer.json", "tokenizer/vocab.json"),
        "scheduler/scheduler_config.json": ("scheduler/scheduler_config.json",),
    },
}
_WHAT = {
    "blip": "a BLIP captioning model (BlipForConditionalGeneration.save_pretrained + BlipProcessor.save_pretrained)",
    "stable-diffusion": "a Stable Diffusion pipeline (StableDiffusionPipeline.save_pretrained, e.g. SD 2.x)",
}


class GenerativeWeightsError(CodecError):
    """A generative codec lacks the pretrained weights the user must supply; the message says what to put where."""


def describe_layout(component: str, layout: dict[str, tuple[str, ...]] | None = None) -> str:
    """The files of `component` one per line, alternatives joined by ' or '."""
    layout = layout or LAYOUTS[component]
    return "\n".join(f"  {component}/{' or '.join(names)}" for names in layout.values())


def require(weights_dir: str | Path | None, component: str, layout: dict[str, tuple[str, ...]] | None = None,
            mode: str = "") -> Path:
    """The folder `<weights_dir>/<component>` once every file of its layout is there.

    Raises GenerativeWeightsError naming the missing files and the full layout (no weights_dir given, folder
    missing, or files missing). `mode` names what needs them in the message (e.g. "mode2").
    """
    if layout is None:
        if component not in LAYOUTS:
            raise ValueError(f"unknown weights component {component!r}; known: {', '.join(LAYOUTS)}")
        layout = LAYOUTS[component]
    who = f"{mode} needs " if mode else "needs "
    what = _WHAT.get(component, component)
    if weights_dir is None or str(weights_dir) == "":
        raise GenerativeWeightsError(
            f"{who}{what} in <weights-dir>/{component}/; no weights directory was given: set `[codecs] "
            f"weights_dir` in the flowgraph (or --weights-dir) to a folder holding:\n{describe_layout(component, layout)}")
    folder = Path(weights_dir).expanduser() / component
    missing = [" or ".join(names) for names in layout.values() if not any((folder / n).is_file() for n in names)]
    if missing:
        where = "does not exist" if not folder.is_dir() else f"lacks {', '.join(missing)}"
        raise GenerativeWeightsError(
            f"{who}{what}: {folder} {where}; provide this layout under {Path(weights_dir).expanduser()}:\n"
            f"{describe_layout(component, layout)}")
    return folder
