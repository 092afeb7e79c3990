"""SoapyRadio over the system SoapySDR bindings: discovery, settings and stream error paths with the
built-in "null" driver; a real device loop only where SAGIN_SOAPY_ARGS names one."""

import os

import numpy as np
import pytest

SoapySDR = pytest.importorskip("SoapySDR", reason="system python3-soapysdr bindings are not linked into the venv")

from sagin_hil.hil.radio import RadioConfig, RadioError, open_radio  # noqa: E402
from sagin_hil.hil.soapy import SoapyRadio, soapy_discover  # noqa: E402

pytestmark = pytest.mark.radio


def test_unknown_driver_is_a_clear_error():
    with pytest.raises(RadioError, match="no SoapySDR device for args 'driver=nosuchsdr'.*found none"):
        open_radio(RadioConfig(kind="soapy", uri="driver=nosuchsdr"))
    assert soapy_discover("driver=nosuchsdr") == []


def test_null_device_opens_and_its_streams_fail_with_the_soapy_code():
    with open_radio(RadioConfig(kind="soapy", uri="driver=null", rx_gain_db="agc", timeout_s=0.2)) as radio:
        assert isinstance(radio, SoapyRadio) and radio.driver == "null"
        radio.configure(carrier_hz=915e6, rx_gain_db=20)
        with pytest.raises(RadioError, match="readStream.*not supported") as info:
            radio.rx(1000)
        assert info.value.partial is not None and len(info.value.partial.samples) == 0
        with pytest.raises(RadioError, match="writeStream.*not supported"):
            radio.tx(np.ones(100, np.complex64))
        with pytest.raises(RadioError, match="complex"):
            radio.tx(np.ones(100))
    with pytest.raises(RadioError, match="closed"):
        radio.rx(10)


@pytest.mark.skipif(not os.environ.get("SAGIN_SOAPY_ARGS"),
                    reason="needs a SoapySDR radio: set SAGIN_SOAPY_ARGS, e.g. driver=hackrf (TX cabled to RX "
                           "through >= 30 dB, see docs/bench.md)")
def test_real_device_receives():  # pragma: no cover - hardware
    with open_radio(RadioConfig(kind="soapy", uri=os.environ["SAGIN_SOAPY_ARGS"], sample_rate_hz=2e6)) as radio:
        res = radio.rx(200_000)
        assert len(res.samples) == 200_000 and np.all(np.isfinite(res.samples))
