"""RadioConfig validation and the open_radio factory's errors."""

import pytest

from sagin_hil.hil.radio import RadioConfig, RadioError, open_radio


def test_defaults_and_derived_values():
    cfg = RadioConfig(kind="pluto-emu", carrier_hz=915e6, sample_rate_hz=2e6)
    assert cfg.tx_lo_hz == 915e6 and cfg.rf_bandwidth_hz == 2e6
    assert RadioConfig(kind="pluto-emu", tx_carrier_hz=916e6, bandwidth_hz=1e6).tx_lo_hz == 916e6


@pytest.mark.parametrize(
    "data, match",
    [
        ({"kind": "pluto"}, "needs a uri"),
        ({"kind": "zmq"}, "needs a uri"),
        ({"kind": "hackrf"}, "kind"),
        ({"kind": "pluto-emu", "carier_hz": 1e9}, "carier_hz"),
        ({"kind": "pluto-emu", "sample_rate_hz": -1}, "sample_rate_hz"),
        ({"kind": "pluto-emu", "rx_gain_db": "loud"}, "rx_gain_db"),
    ],
)
def test_bad_config_names_the_field(data, match):
    with pytest.raises(RadioError, match=match):
        RadioConfig.parse(data)
    with pytest.raises(RadioError, match=match):
        open_radio(data)
