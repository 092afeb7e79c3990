"""Flowgraph files: the embedded default loads; bad files get errors naming file, key, value and fix."""

import pytest

from sagin_hil.flowgraphs.config import FlowgraphError, load_flowgraph


def test_default_flowgraph_matches_the_reference_setting():
    fg = load_flowgraph()
    assert fg.name == "leo-pass-loopback"
    assert fg.images.count >= 8
    assert fg.radio.kind == "emulated"
    assert fg.tasks.deadline_s == (2.0, 11.0)  # D_max ~ U[2, 11] s (paper 000, Sec. V)
    assert fg.phy.symbol_rate_hz * (1 + fg.phy.rolloff) == pytest.approx(10e6)  # the 10 MHz channel


def test_errors_name_file_key_value_and_alternatives(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\n[phy]\nsps = 1\nrollof = 0.3\n[radio]\nkind = "usrp"\n')
    with pytest.raises(FlowgraphError) as exc:
        load_flowgraph(path)
    msg = str(exc.value)
    assert str(path) in msg
    assert "'phy.sps' = 1" in msg and "greater than or equal to 2" in msg
    assert "did you mean 'rolloff'" in msg
    assert "'radio.kind' = 'usrp'" in msg and "'pluto-emu'" in msg


def test_unreadable_inputs(tmp_path):
    with pytest.raises(FlowgraphError, match="no such flowgraph file.*shipped one: default, .*rain-fade.*urban-004"):
        load_flowgraph(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = [unclosed\n")
    with pytest.raises(FlowgraphError, match="not valid TOML"):
        load_flowgraph(broken)
    swapped = tmp_path / "swapped.toml"
    swapped.write_text("[tasks]\ndeadline_s = [11.0, 2.0]\n")
    with pytest.raises(FlowgraphError, match="lo <= hi"):
        load_flowgraph(swapped)


def test_shipped_flowgraphs_load_by_name_and_set_keys_over_the_reference_scenario():
    from sagin_hil.flowgraphs.runner import _load_scenario

    fg = load_flowgraph("rain-fade")
    assert fg.controller.modes == ["mode1", "jscc-1/12"] and fg.source == "<shipped rain-fade.toml>"
    faded, clear = _load_scenario(fg), _load_scenario(load_flowgraph())
    assert faded.config.space_air.excess_loss_db == 23.0 and faded.config.uavs == clear.config.uavs
    t = 60.0
    assert faded.link_state("leo0", "uav0", t).snr_db == pytest.approx(clear.link_state("leo0", "uav0", t).snr_db - 23.0)
    assert faded.link_state("uav0", "user0", t).snr_db == pytest.approx(clear.link_state("uav0", "user0", t).snr_db)


def test_overrides_are_validated_and_paths_resolve(tmp_path):
    fg = load_flowgraph().with_overrides(images=3, radio="pluto-emu")
    assert fg.images.count == 3 and fg.radio.kind == "pluto-emu"
    with pytest.raises(FlowgraphError, match="images.count"):
        load_flowgraph().with_overrides(images=0)
    f = tmp_path / "fg.toml"
    f.write_text('[scenario]\nfile = "sc.toml"\n')
    assert load_flowgraph(f).scenario_path() == tmp_path / "sc.toml"


def test_every_key_is_documented():
    from pathlib import Path

    from pydantic import BaseModel

    import sagin_hil
    from sagin_hil.flowgraphs.config import Flowgraph

    def keys(model: type[BaseModel], prefix: str = "") -> list[str]:  # tables within tables: their own keys
        out = []
        for name, field in model.model_fields.items():
            ann = field.annotation
            nested = isinstance(ann, type) and issubclass(ann, BaseModel)
            out += keys(ann, f"{prefix}{name}.") if nested else [f"{prefix}{name}"]
        return out

    doc = (Path(sagin_hil.__file__).parent / "docs" / "flowgraphs.md").read_text()
    found = [k for k in keys(Flowgraph) if k != "source"]
    assert "codecs.spiff.engine" in found
    for key in found:
        assert f"`{key}`" in doc, f"flowgraph key {key} is missing from docs/flowgraphs.md"
