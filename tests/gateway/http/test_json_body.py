import decimal
import json

import pytest

from gateway.http.json_body import loads


def test_json_as_rfc_8259_has_it():
    assert loads(b'{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert loads('{"cost": 0.100000000000000005}', exact=True) == {"cost": decimal.Decimal("0.100000000000000005")}
    assert isinstance(loads("1.5"), float)


@pytest.mark.parametrize("raw", [b"NaN", b'{"a": Infinity}', b"[-Infinity]"])
def test_nan_and_infinity_are_not_json(raw):
    with pytest.raises(ValueError, match="is not valid JSON"):
        loads(raw)


def test_malformed_json_says_where():
    with pytest.raises(json.JSONDecodeError) as err:
        loads(b'{"a": ')
    assert err.value.pos == 6


def test_nesting_too_deep_for_the_decoder_is_malformed_json():
    with pytest.raises(ValueError, match="recursion"):  # a ValueError, not a RecursionError (a 500)
        loads(b"[" * 5000 + b"]" * 5000)
    assert json.dumps(loads(b"[" * 50 + b"]" * 50), separators=(",", ":")) == "[" * 50 + "]" * 50
