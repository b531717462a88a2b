import decimal
import json

import pytest

from gateway.http.json_response import JSONResponse, decimal_number, dumps


@pytest.mark.parametrize(("value", "text"), [
    ("0.0043", "0.0043"), ("0", "0.0"), ("0.00", "0.00"), ("12", "12.0"), ("1E-20", "0.00000000000000000001"),
    ("0.100000000000000005", "0.100000000000000005"), ("1E+3", "1000.0"),
])
def test_decimals_are_exact_json_numbers(value, text):
    assert decimal_number(decimal.Decimal(value)) == text
    assert json.loads(text, parse_float=decimal.Decimal) == decimal.Decimal(value)


def test_non_finite_decimals_are_refused():
    with pytest.raises(ValueError):
        decimal_number(decimal.Decimal("NaN"))


def test_dumps_matches_json_for_everything_else():
    value = {"a": [1, 2.5, None, True, "é\"\n"], "b": {"c": decimal.Decimal("1.5")}, "big": 2**64}
    assert json.loads(dumps(value), parse_float=decimal.Decimal) == {
        "a": [1, decimal.Decimal("2.5"), None, True, "é\"\n"], "b": {"c": decimal.Decimal("1.5")}, "big": 2**64}
    assert JSONResponse({"x": decimal.Decimal("0.1")}).body == b'{"x":0.1}'
