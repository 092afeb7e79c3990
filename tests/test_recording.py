"""SigMF recording of rx() results and replay of a recording as a Radio."""

import json

import numpy as np
import pytest

from sagin_hil.hil.radio import RadioConfig, RadioError, RxResult, open_radio
from sagin_hil.hil.recording import ReplayRadio, SigMFRecorder, recording_paths

sigmf = pytest.importorskip("sigmf")
from sigmf import sigmffile  # noqa: E402


def _result(x, t, carrier=2.4e9, ovf=0, gain=30.0):
    meta = {"radio": "pluto", "uri": "ip:x", "carrier_hz": carrier, "sample_rate_hz": 1e6,
            "rx_gain_db": gain, "tx_gain_db": -10.0, "scenario": "sc.toml", "link": "leo0->uav0"}
    return RxResult(x.astype(np.complex64), t, ovf, 0, meta)


def test_recording_is_valid_sigmf_with_per_rx_captures(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(1000) + 1j * rng.standard_normal(1000)
    b = rng.standard_normal(500) + 1j * rng.standard_normal(500)
    with SigMFRecorder(tmp_path / "cap", RadioConfig(kind="pluto", uri="ip:x", scenario="sc.toml")) as rec:
        rec.append(_result(a, 1_700_000_000.25))
        rec.append(_result(b, 1_700_000_001.5, carrier=2.41e9, ovf=2, gain="agc"))
    meta_path, data_path = recording_paths(tmp_path / "cap")
    handle = sigmffile.fromfile(str(meta_path))
    handle.validate()  # the sigmf package's schema check
    x = handle.read_samples()
    np.testing.assert_array_equal(x, np.concatenate([a, b]).astype(np.complex64))
    assert handle.get_global_field("core:sample_rate") == 1e6
    assert handle.get_global_field("core:datatype") == "cf32_le"
    caps = handle.get_captures()
    assert [c["core:sample_start"] for c in caps] == [0, 1000]
    assert [c["core:frequency"] for c in caps] == [2.4e9, 2.41e9]
    assert caps[0]["core:datetime"] == "2023-11-14T22:13:20.250000Z"
    assert caps[1]["sagin:rx_gain_db"] == "agc" and caps[1]["sagin:overflows"] == 2
    ann = handle.get_annotations()
    assert len(ann) == 1 and ann[0]["core:sample_start"] == 1000 and "overflow" in ann[0]["core:comment"]
    assert data_path.stat().st_size == 1500 * 8


def test_rate_change_within_a_recording_is_refused(tmp_path):
    rec = SigMFRecorder(tmp_path / "r")
    rec.append(_result(np.ones(10, complex), 0.0))
    bad = _result(np.ones(10, complex), 1.0)
    bad.metadata["sample_rate_hz"] = 2e6
    with pytest.raises(RadioError, match="sample rate changed"):
        rec.append(bad)
    rec.close()


def test_replay_radio_streams_the_recording_and_ends_clearly(tmp_path):
    x = (np.arange(3000) * (1 + 1j)).astype(np.complex64)
    with SigMFRecorder(tmp_path / "rep") as rec:
        rec.append(_result(x[:2000], 100.0))
        rec.append(_result(x[2000:], 200.0, carrier=2.45e9))
    cfg = RadioConfig(kind="replay", uri=str(tmp_path / "rep.sigmf-meta"))
    with open_radio(cfg) as radio:
        assert isinstance(radio, ReplayRadio) and radio.config.sample_rate_hz == 1e6
        r1 = radio.rx(1500)
        r2 = radio.rx(1000)
        np.testing.assert_array_equal(np.concatenate([r1.samples, r2.samples]), x[:2500])
        assert r1.time_s == pytest.approx(100.0) and r2.time_s == pytest.approx(100.0 + 1500 / 1e6)
        assert r1.metadata["carrier_hz"] == 2.4e9
        with pytest.raises(RadioError, match="ended") as info:
            radio.rx(1000)
        np.testing.assert_array_equal(info.value.partial.samples, x[2500:])
        assert info.value.partial.metadata["carrier_hz"] == 2.45e9
        with pytest.raises(RadioError, match="only receives"):
            radio.tx(x)
        with pytest.raises(RadioError, match="its own rate"):
            radio.configure(sample_rate_hz=2e6)
    with open_radio(cfg.model_copy(update={"loop": True})) as radio:
        y = radio.rx(7000)
        np.testing.assert_array_equal(y.samples, np.tile(x, 3)[:7000])


def test_missing_or_corrupt_recording(tmp_path):
    with pytest.raises(RadioError, match="no SigMF recording"):
        open_radio(RadioConfig(kind="replay", uri=str(tmp_path / "nope")))
    (tmp_path / "bad.sigmf-meta").write_text("{not json")
    (tmp_path / "bad.sigmf-data").write_bytes(b"")
    with pytest.raises(RadioError, match="cannot read SigMF"):
        open_radio(RadioConfig(kind="replay", uri=str(tmp_path / "bad")))


def test_record_any_radio_then_replay_it(tmp_path):
    """A pluto-emu capture recorded through record_path replays sample for sample."""
    pytest.importorskip("adi")
    cfg = RadioConfig(kind="pluto-emu", sample_rate_hz=1e6, rx_buffer_size=4096, record_path=str(tmp_path / "emu"),
                      scenario=None)
    with open_radio(cfg) as radio:
        radio.tx((0.5 * np.exp(2j * np.pi * 0.01 * np.arange(1000))).astype(np.complex64), cyclic=True)
        got = [radio.rx(3000).samples for _ in range(3)]
    meta = json.loads((tmp_path / "emu.sigmf-meta").read_text())
    assert meta["global"]["sagin:radio"] == "pluto-emu" and len(meta["captures"]) == 3
    with open_radio(RadioConfig(kind="replay", uri=str(tmp_path / "emu"))) as replay:
        np.testing.assert_array_equal(replay.rx(9000).samples, np.concatenate(got))
