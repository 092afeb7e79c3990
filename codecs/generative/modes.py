"""Codec factories of the generative modes: which decoder a Mode 3_x row gets, with or without user weights."""

from __future__ import annotations

from pathlib import Path

from sagin_hil.codecs.base import Codec

__all__ = ["mode3_codec"]


def mode3_codec(mode: str = "3_1", weights_dir: str | Path | None = None, device: str | None = None,
                **kw: object) -> Codec:
    """Mode 3_x's codec: with a weights folder holding stable-diffusion/, the latent codec on the user's
    Stable Diffusion (and BLIP; its missing files are named); otherwise the offline VQ indices + small
    diffusion decoder shipped in codecs/weights/."""
    from sagin_hil.codecs.modes import LATENT_PATH_WEIGHTS

    if weights_dir and (Path(weights_dir).expanduser() / LATENT_PATH_WEIGHTS[0]).is_dir():
        from sagin_hil.codecs.generative.latent import LatentVqCodec

        return LatentVqCodec(weights_dir, mode, device=device or "auto", **kw)
    from sagin_hil.codecs.generative.offline import GenVqCodec

    return GenVqCodec.pretrained(mode, device=None if device in (None, "auto") else device, **kw)
