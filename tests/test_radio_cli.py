"""`sagin-hil pluto-emu`, `sagin-hil radio probe` and `sagin-hil radio record`."""

import os
import re
import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

pytest.importorskip("adi")

from sagin_hil.cli import app  # noqa: E402
from sagin_hil.hil.iiod import start_pluto_emulator  # noqa: E402

pytestmark = pytest.mark.radio


def test_probe_record_and_probe_the_recording(tmp_path):
    runner = CliRunner()
    with start_pluto_emulator(seed=1) as server:
        res = runner.invoke(app, ["radio", "probe", server.uri, "--samples", "2048"])
        assert res.exit_code == 0, res.output
        assert "PlutoRadio" in res.output and re.search(r"rx 2048 samples: rms -\d+\.\d dBFS", res.output)
        res = runner.invoke(app, ["radio", "record", server.uri, "--out", str(tmp_path / "cap"),
                                  "--samples", "5000", "--chunk", "2000", "--sample-rate-hz", "1e6"])
        assert res.exit_code == 0, res.output
    assert (tmp_path / "cap.sigmf-data").stat().st_size == 5000 * 8
    res = runner.invoke(app, ["radio", "probe", str(tmp_path / "cap.sigmf-meta"), "--samples", "5000"])
    assert res.exit_code == 0 and "ReplayRadio" in res.output
    res = runner.invoke(app, ["radio", "probe", "ip:127.0.0.1:1", "--samples", "0"])
    assert res.exit_code == 2 and "no Pluto reachable" in res.output
    res = runner.invoke(app, ["radio", "probe", "what-is-this"])
    assert res.exit_code != 0 and "cannot tell the radio kind" in res.output


def test_pluto_emu_command_serves_pyadi_iio_until_interrupted():
    import adi

    proc = subprocess.Popen(
        [sys.executable, "-m", "sagin_hil", "pluto-emu", "--port", "0", "--seed", "3"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env={**os.environ},
    )
    try:
        line = proc.stderr.readline()
        m = re.search(r"emulated Pluto at (ip:127\.0\.0\.1:\d+)", line)
        assert m, line
        sdr = adi.Pluto(m.group(1))
        sdr.rx_lo = 915_000_000
        assert sdr.rx_lo == 915_000_000
        sdr.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
