"""The built-in YAML writer: what a YAML reader loads is exactly the data written."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from example_app.main import build_app
from framework.asyncapi import build_asyncapi, to_yaml
from tests.asyncapi import app as shop
from tests.asyncapi.schema import schema_errors

TRICKY: dict[str, Any] = {
    "plain": "orders.created",
    "words": ["yes", "No", "on", "OFF", "true", "False", "null", "~", "y", "N", ""],
    "numbers_as_text": ["1", "1.0", "0x1F", "1e5", "1:20", "0o17", "-3", "+4", ".5", "1_000"],
    "indicators": ["- a", "? q", ": c", "#/x", "&a", "*b", "!t", "|", ">", "'q'", '"d"', "%", "@"],
    "backtick": ["`code`", "a`b"],
    "spaces": [" lead", "trail ", "a: b", "a #b", "two  spaces"],
    "escapes": 'line\nbreak\ttab\r\\ "quote" \x00\x07\x1b\x7f\x85\u2028\u2029\ufeff end',
    "unicode": "caf\u00e9 \u2013 \u6771\u4eac \U0001f600",
    "$ref": "#/components/schemas/Order",
    "1": "a key that looks like a number",
    "true": "a key that looks like a bool",
    "numbers": [0, -1, 10**20, 1.5, -0.25, 1e-05, 1e20, 3.0],
    "flags": [True, False, None],
    "empty": {"dict": {}, "list": []},
    "nested": [[1, [2, []]], [{"a": [{"b": {}}]}], {"k": [[]]}],
}


def test_tricky_values_round_trip() -> None:
    assert yaml.safe_load(to_yaml(TRICKY)) == TRICKY


def test_scalars_and_empty_documents() -> None:
    for value in ("text", 3, None, True, [], {}):
        assert yaml.safe_load(to_yaml(value)) == value


def test_non_json_data_is_refused() -> None:
    with pytest.raises(TypeError, match="set"):
        to_yaml({"a": {1, 2}})
    with pytest.raises(TypeError, match="keys must be strings"):
        to_yaml({1: "a"})


async def test_documents_round_trip_and_stay_valid() -> None:
    for app in (build_app(), shop.app):
        doc = await build_asyncapi(app)
        loaded = yaml.safe_load(to_yaml(doc))
        assert loaded == doc
        assert schema_errors(loaded) == []


def test_the_schema_check_is_not_vacuous() -> None:
    # A wrong document must fail, or the other tests prove nothing.
    base = {"asyncapi": "3.0.0", "info": {"title": "t", "version": "1"}}
    assert schema_errors(base) == []
    bad_action = copy.deepcopy(base)
    bad_action["channels"] = {"c": {"address": "c"}}
    bad_action["operations"] = {"o": {"action": "publish", "channel": {"$ref": "#/channels/c"}}}
    assert schema_errors(bad_action)
    no_protocol = {**base, "servers": {"s": {"host": "h"}}}
    assert schema_errors(no_protocol)
    assert schema_errors({**base, "asyncapi": "2.6.0"})
