"""The one registry shape every pluggable part uses: lazy, named errors, defaults."""

import subprocess
import sys

import pytest

from sagin_hil.registry import Registry, RegistryError


def test_entries_resolve_lazily_and_take_defaults():
    reg = Registry("thing", {"frac": ("fractions:Fraction", {"numerator": 3}), "obj": 42})
    assert reg.names() == ["frac", "obj"] and "frac" in reg and len(reg) == 2
    assert reg.create("frac", denominator=4) == 0.75 and reg.create("frac", numerator=1, denominator=2) == 0.5
    assert reg.get("obj") == 42
    reg.register("later", "math:sqrt")
    assert reg.get("later")(9.0) == 3.0


def test_unknown_names_and_broken_targets_are_named():
    reg = Registry("codec", {"jpeg2000": "nowhere.at_all:Codec"})
    with pytest.raises(RegistryError, match=r"unknown codec 'jpeg200'; did you mean 'jpeg2000'\? \(choose one of: jpeg2000\)"):
        reg.get("jpeg200")
    with pytest.raises(RegistryError, match="codec 'jpeg2000' cannot be loaded from 'nowhere.at_all:Codec'"):
        reg.get("jpeg2000")
    with pytest.raises(RegistryError, match="package.module:attr"):
        Registry("x", {"bad": "no-colon"}).get("bad")


def test_listing_the_built_in_parts_imports_none_of_them():
    """A base module never imports its implementations: naming every codec, controller, radio and mode
    leaves torch, glymur, pyadi-iio and the controllers' modules unimported."""
    code = (
        "import sys\n"
        "from sagin_hil.codecs import available_codecs\n"
        "from sagin_hil.controllers import available_controllers\n"
        "from sagin_hil.hil.radio import RADIOS\n"
        "from sagin_hil.codecs.modes import available_modes\n"
        "print(len(available_codecs()), len(available_controllers()), len(RADIOS), len(available_modes()))\n"
        "heavy = [m for m in ('torch', 'glymur', 'adi', 'sagin_hil.controllers.ao', 'sagin_hil.codecs.jscc',"
        " 'sagin_hil.controllers.link_adaptation', 'sagin_hil.hil.pluto') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "12 11 5 9" and out[1] == "[]", out  # 11 controllers: dsac, mappo, then jcrra joined; spiff codec and mode; gen-3_x and caption-t2i codecs, mode2; lossless JPEG 2000 codec and mode1-lossless
