"""decoder_for: the decoder each code family gets by default, and the spec strings a command line passes."""

import numpy as np
import pytest

from sagin_hil.phy.ldpc import code_family, code_from_parity_matrix, decoder_for, describe_decoder, dvbs2_code, nr_code


def test_family_defaults():
    nr = decoder_for(nr_code(256, 512))
    assert (nr.algorithm, nr.scale, nr.iterations) == ("layered-nms", 0.75, 10)
    s2 = decoder_for(dvbs2_code("1/4", "short"))
    assert (s2.algorithm, s2.scale, s2.iterations) == ("layered-nms", 0.875, 50)
    hamming = code_from_parity_matrix(np.array([[1, 1, 0, 1, 1, 0, 0], [1, 0, 1, 1, 0, 1, 0], [0, 1, 1, 1, 0, 0, 1]]))
    assert code_family(hamming) == "other" and decoder_for(hamming).scale == 0.75


@pytest.mark.parametrize("spec, expected", [
    ("layered-nms:0.9", ("layered-nms", 0.9, 0.5)),
    ("layered-nms", ("layered-nms", 0.875, 0.5)),   # the name alone keeps the family's scale
    ("layered-oms:0.25", ("layered-oms", 0.875, 0.25)),
    ("flooding-spa", ("flooding-spa", 0.875, 0.5)),
])
def test_specs_are_honoured(spec, expected):
    dec = decoder_for(dvbs2_code("1/2", "short"), spec, iterations=7)
    assert (dec.algorithm, dec.scale, dec.offset) == expected and dec.iterations == 7


@pytest.mark.parametrize("spec, needle", [
    ("bp", "unknown decoder 'bp'"),
    ("flooding-spa:0.5", "unknown decoder 'flooding-spa:0.5'"),
    ("auto:0.8", "unknown decoder"),
    ("layered-nms:x", "'x' is not a number"),
    ("layered-nms:0", "scale=0.0 must lie in (0, 1]"),
])
def test_bad_specs_are_named(spec, needle):
    with pytest.raises(ValueError) as err:
        decoder_for(nr_code(256, 512), spec)
    assert needle in str(err.value)


def test_describe():
    assert describe_decoder(decoder_for(nr_code(256, 512), "layered-oms:0.3", 4)) == "layered-oms offset 0.3, 4 iterations"
