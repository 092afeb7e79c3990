"""Generative semantic codecs: paper 000's Mode 2 and diffusion-decoded Modes 3_x, and paper 003's SPIFF.

Heavy stacks (torch, transformers, diffusers) load only inside the codecs that need them.
"""
