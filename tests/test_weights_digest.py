"""Measurements made from trained weights record the files' digests, so replaced weights are named, with the
command that measures again, instead of silently steering the controllers with the old models' numbers."""

import json
import shutil
import warnings

import pytest

from sagin_hil.calibration.ssim_surface import SURFACE_PATH, load_surface, measure_jscc_ssim
from sagin_hil.codecs.jscc import JsccConfig, JsccNet, save_model
from sagin_hil.codecs.modes import MODE_TABLE_PATH, MODES, file_digest, load_mode_table, remeasure_hint, stale_modes
from sagin_hil.codecs.profile import IMAGE_PROFILES_PATH, image_profiles


def test_the_shipped_mode_table_and_surface_were_measured_with_the_shipped_weights():
    """The state a half-finished retraining leaves (new weights, old measurements) cannot be committed."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = load_mode_table()
        load_surface()
        image_profiles()
    assert stale_modes(table) == []
    recorded = json.loads(IMAGE_PROFILES_PATH.read_text())["weights_sha256"]
    assert recorded == {m: MODES.get(m).weights_digests() for m in recorded} and "jscc-1/12" in recorded
    for name in ("jscc-1/12", "jscc-1/6"):
        spec = MODES.get(name)
        assert table["modes"][spec.table_key]["weights_sha256"] == spec.weights_digests()
        assert None not in spec.weights_digests().values()
    files = json.loads(SURFACE_PATH.read_text())["fit"]["measured"]["weights"]["files"]
    assert {r: f["sha256"] for r, f in files.items()} == {
        r: file_digest(MODE_TABLE_PATH.parent / f"jscc-{r.replace('/', '_')}.safetensors") for r in ("1/12", "1/6")}


def test_a_replaced_weights_file_makes_its_mode_table_row_stale(tmp_path):
    shutil.copy(MODE_TABLE_PATH.parent / "jscc-1_12.safetensors", tmp_path)
    spec = MODES.get("jscc-1/12")
    table = {"modes": {"jscc-1/12": {"weights_sha256": spec.weights_digests(tmp_path)},
                       "1": {"psnr_db": 30.0}}}  # a row without digests is not judged
    assert stale_modes(table, tmp_path) == []
    with open(tmp_path / "jscc-1_12.safetensors", "ab") as f:  # retrained: other bytes
        f.write(b"\0")
    assert stale_modes(table, tmp_path) == ["jscc-1/12"]
    (tmp_path / "jscc-1_12.safetensors").unlink()  # removed: also not what was measured
    assert stale_modes(table, tmp_path) == ["jscc-1/12"]


def test_a_surface_measured_with_other_weights_warns_with_the_command_that_measures_again(tmp_path):
    """measure_jscc_ssim records the file each codec read; load_surface compares it with the file there now."""
    save_model(JsccNet(JsccConfig(ratio="1/12", channels=8)), JsccConfig(ratio="1/12", channels=8),
               tmp_path / "jscc-1_12.safetensors")
    measured = measure_jscc_ssim(["1/12"], [0.0], n_tiles=4, noise_seeds=1, weights_dir=tmp_path)
    assert measured["weights"] == {"dir": str(tmp_path.resolve()), "files": {"1/12": {
        "name": "jscc-1_12.safetensors", "sha256": file_digest(tmp_path / "jscc-1_12.safetensors")}}}
    stored = json.loads(SURFACE_PATH.read_text())
    stored["fit"]["measured"] = measured
    path = tmp_path / "surface.json"
    path.write_text(json.dumps(stored))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_surface(path)
    wider = JsccConfig(ratio="1/12", channels=16)  # retrained (wider: a new size, whatever the mtime resolution)
    save_model(JsccNet(wider), wider, tmp_path / "jscc-1_12.safetensors")
    with pytest.warns(UserWarning, match=rf"jscc-1/12 .*calibrate jscc-surface --weights-dir {tmp_path.resolve()}"):
        load_surface(path, quantile=0.1)


def test_the_hint_after_training_names_the_commands_that_measure_again():
    assert remeasure_hint(["jscc-1/12", "jscc-1/24"]).endswith(
        "measure them again: sagin-hil train modes --modes jscc-1/12 && sagin-hil calibrate jscc-surface")
    assert remeasure_hint(["mode3_1", "mode3_2"]).endswith("sagin-hil train modes --modes mode3_1,mode3_2")
    assert remeasure_hint(["jscc-1/24"]) == ""  # not a registered mode: no row to measure
