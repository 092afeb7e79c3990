"""What a new user reads: error text keeps its [brackets], `--version` exists, long commands show a bar."""

import io

import pytest
from rich.console import Console
from typer.testing import CliRunner

from sagin_hil import __version__
from sagin_hil.benchmarks import benchmark_entry, print_results
from sagin_hil.cli import app

runner = CliRunner()
# Rich draws progress bars only on a terminal; these make the captured stderr count as one.
TTY = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}


def test_top_level_version_option_prints_the_version_and_exits():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"sagin-hil {__version__}"
    res = runner.invoke(app, ["--version", "bench", "warp-drive"])  # eager: nothing else runs
    assert res.exit_code == 0 and "warp-drive" not in res.output
    assert "numpy" in runner.invoke(app, ["version"]).output  # the command stays


def test_bracketed_benchmark_name_is_printed_as_typed():
    res = runner.invoke(app, ["bench", "[nope]"])
    assert res.exit_code == 2 and "unknown benchmark '[nope]'" in res.output


def test_flowgraph_error_naming_a_table_keeps_its_brackets(tmp_path, monkeypatch):
    import sagin_hil.flowgraphs.config as config

    message = "key 'algoo' in [controller] is not allowed; did you mean [controller] algo?"

    def fail(path, *args, **kwargs):
        raise config.FlowgraphError(message)

    monkeypatch.setattr(config, "load_flowgraph", fail)
    res = runner.invoke(app, ["run", str(tmp_path / "x.toml")])
    assert res.exit_code == 2 and message in " ".join(res.output.split())


@pytest.mark.parametrize("args, expected", [
    (["controller", "serve", "--algo", "[x]"], "'[x]'"),
    (["controller", "serve", "--option", "[a]"], "'[a]'"),
    (["radio", "probe", "[x]"], "'[x]'"),
    (["train", "eval", "[jscc]"], "'[jscc]'"),
])
def test_each_layers_errors_keep_brackets(args, expected):
    # the wording belongs to each layer; what matters here is that the quoted [value] survives printing
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and expected in " ".join(res.output.replace("│", " ").split())


def test_option_errors_keep_brackets(tmp_path):
    res = runner.invoke(app, ["ber", "--code", "dvbs2:[1/4]:short", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "'[1/4]'" in res.output


def test_bench_table_cells_keep_brackets():
    buf = io.StringIO()
    res = {"benchmarks": [benchmark_entry("grid[0]", {"setting": "[0, 1]"}, {"peer": {"skipped": "pip install x[extra]"}}, {})]}
    print_results(res, Console(file=buf, width=200))
    out = buf.getvalue()
    assert "grid[0]" in out and "[0, 1]" in out and "x[extra]" in out


def test_calibrate_bler_shows_a_progress_bar(tmp_path):
    res = runner.invoke(app, ["calibrate", "bler", "--mcs", "qpsk-1/2", "--snr-db", "-2:4:1", "--blocks", "10",
                              "--code-k", "256", "--out", str(tmp_path / "t.json")], env=TTY)
    assert res.exit_code == 0, res.output
    assert "BLER points" in res.stderr and "7/7" in res.stderr  # 1 MCS x 7 Es/N0 points, all counted


def test_calibrate_bler_names_a_bad_decoder(tmp_path):
    res = runner.invoke(app, ["calibrate", "bler", "--mcs", "qpsk-1/2", "--snr-db", "0:1:1",
                              "--decoder", "bp", "--out", str(tmp_path / "t.json")])
    assert res.exit_code == 2 and "'bp'" in res.output and "flooding-spa" in res.output
    assert not (tmp_path / "t.json").exists()


def test_ao_sweep_shows_a_progress_bar(tmp_path):
    res = runner.invoke(app, ["controller", "ao-sweep", "--seeds", "1", "--out", str(tmp_path)], env=TTY)
    assert res.exit_code == 0, res.output
    assert "AO runs" in res.stderr and "56/56" in res.stderr  # 2 sweeps x 7 points x 4 schemes


def test_bench_progress_names_the_step(monkeypatch):
    import sagin_hil.controllers.bench as controller_bench
    from sagin_hil.benchmarks import report_progress

    def fake_bench(quick: bool = False):
        report_progress("step one", 0, 2)
        report_progress("step two [peer]", 1, 2)
        return {"benchmarks": [benchmark_entry("fake", {"mbps": 1.0}, {}, {})]}

    monkeypatch.setattr(controller_bench, "bench_controller", fake_bench)  # resolved when the bench runs
    res = runner.invoke(app, ["bench", "controller"], env=TTY)
    assert res.exit_code == 0, res.output
    assert "bench controller: step two [peer]" in res.stderr and "1/2" in res.stderr
    assert "fake" in res.stdout and "step" not in res.stdout  # the bar stays off stdout


def test_report_progress_outside_a_bench_is_a_no_op():
    from sagin_hil.benchmarks import progress_reporter, report_progress

    report_progress("nobody listens", 1, 2)
    seen = []
    with progress_reporter(lambda *a: seen.append(a)):
        report_progress("x", 1, 2)
    report_progress("after", 2, 2)
    assert seen == [("x", 1, 2)]


@pytest.mark.parametrize("fn", ["measure_bler_table", "run_sweeps"])
def test_progress_callbacks_count_every_step(fn, tmp_path):
    calls = []
    if fn == "measure_bler_table":
        from sagin_hil.calibration.bler import measure_bler_table

        # 2 MCS x 3 points; the points past the first error-free one are skipped but still counted
        measure_bler_table(["qpsk-1/2", "16qam-1/2"], [-4.0, 20.0, 21.0], n_blocks=10, code_k=256,
                           progress=lambda d, t: calls.append((d, t)))
        assert calls == [(i, 6) for i in range(1, 7)]
    else:
        from sagin_hil.controllers.sweep import run_sweeps

        run_sweeps(tmp_path, n_seeds=1, progress=lambda d, t: calls.append((d, t)))
        assert calls == [(i, 56) for i in range(1, 57)]
