"""The command line: help reads well, errors are clear, the bench schema is enforced."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sagin_hil.benchmarks import benchmark_entry, merge_results, validate_results
from sagin_hil.cli import BENCHMARKS, app

runner = CliRunner()


def test_help_lists_the_main_commands():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("run", "bench", "version"):
        assert cmd in res.output


def test_version_names_the_package():
    res = runner.invoke(app, ["version"])
    assert res.exit_code == 0 and "sagin-hil 0.1.0" in res.output


def test_bad_flowgraph_exits_2_with_the_reason(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[images]\ncount = -3\n")
    res = runner.invoke(app, ["run", str(bad)])
    assert res.exit_code == 2
    assert "images.count" in res.output and "-3" in res.output


def test_unknown_benchmark_is_named():
    res = runner.invoke(app, ["bench", "warp-drive"])
    assert res.exit_code == 2
    assert "warp-drive" in res.output and "ldpc" in res.output


def test_every_registered_benchmark_points_at_a_function():
    for name in BENCHMARKS:
        assert callable(BENCHMARKS.get(name)), name


def test_bench_schema_validation_and_merge():
    good = {"benchmarks": [benchmark_entry("x", {"mbps": 2.0}, {"peer": {"mbps": 1.0}}, {"peer": 2.0})],
            "curves": [{"codec": "a"}]}
    assert validate_results(good) is good
    with pytest.raises(ValueError, match="lacks"):
        validate_results({"benchmarks": [{"name": "x"}]})
    with pytest.raises(ValueError, match="no such peer"):
        validate_results({"benchmarks": [benchmark_entry("x", {}, {}, {"ghost": 1.0})]})
    merged = merge_results([good, good])
    assert len(merged["benchmarks"]) == 2 and len(merged["curves"]) == 2
    json.dumps(merged)


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "sagin_hil", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "sagin-hil" in out.stdout


def test_unknown_controller_is_named_before_anything_runs(tmp_path):
    fg = tmp_path / "fg.toml"
    fg.write_text('[images]\ncount = 1\nsize_px = 64\n[controller]\nalgo = "oracle"\n')
    res = runner.invoke(app, ["run", str(fg), "--out", str(tmp_path / "runs")])
    assert res.exit_code == 2
    assert "'controller.algo' = 'oracle'" in res.output and "link-adaptation" in res.output
    assert not (tmp_path / "runs").exists()
