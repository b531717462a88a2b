"""The log settings and the JSON line: one object per line with the request id in effect."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from metering.logs import ACCESS_LOGGER, JsonFormatter, LogSettings, configure_logging, log_settings, request_id


def test_settings_default_to_text_without_access_lines():
    assert log_settings({}) == LogSettings(level="INFO", json=False, access=False)
    assert log_settings({"METERING_LOG_FORMAT": "JSON", "METERING_ACCESS_LOG": "on", "METERING_LOG_LEVEL": "debug"}) \
        == LogSettings(level="DEBUG", json=True, access=True)


@pytest.mark.parametrize("name, value", [("METERING_LOG_FORMAT", "xml"), ("METERING_ACCESS_LOG", "sometimes"),
                                         ("METERING_LOG_LEVEL", "loud")])
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(ValueError, match=name):
        log_settings({name: value})


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.getLogger("t").makeRecord("t", logging.WARNING, __file__, 1, message, args, None, extra=extra)
    return made


def test_a_json_line_carries_the_request_id_extra_fields_and_the_exception():
    token = request_id.set("rid-42")
    try:
        line = json.loads(JsonFormatter().format(record("rpc %s took %dms", "M", 3, code="OK", duration_ms=3.5)))
    finally:
        request_id.reset(token)
    assert line["message"] == "rpc M took 3ms" and (line["level"], line["logger"]) == ("WARNING", "t")
    assert (line["request_id"], line["code"], line["duration_ms"]) == ("rid-42", "OK", 3.5)
    assert line["time"].endswith("+00:00")
    try:
        raise KeyError("boom")
    except KeyError:
        failed = record("failed")
        failed.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(failed))
    assert "request_id" not in line  # none known
    assert "KeyError: 'boom'" in line["exception"] and "\n" not in JsonFormatter().format(failed)


def test_access_lines_are_off_by_default_and_on_whatever_the_level(saved_logging):
    access = logging.getLogger(ACCESS_LOGGER)
    configure_logging(LogSettings(level="INFO"))
    assert not access.isEnabledFor(logging.INFO) and access.isEnabledFor(logging.WARNING)
    configure_logging(LogSettings(level="WARNING", access=True))
    assert access.isEnabledFor(logging.INFO) and not logging.getLogger("server").isEnabledFor(logging.INFO)
    configure_logging(LogSettings(json=True))
    assert [type(h.formatter) for h in logging.getLogger().handlers] == [JsonFormatter]
