"""The default bounds that let structured output end (generation.engine.json_schema_bounds)."""

import json

from generation.engine.json_schema_bounds import (
    FRACTION_DIGITS, NUMBER_BOUND, STRING_MAX_LENGTH, with_default_bounds,
)


def bounded(schema: dict) -> dict:
    return json.loads(with_default_bounds(json.dumps(schema)))


def test_unbounded_numbers_and_strings_get_bounds_wherever_they_are():
    schema = bounded({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "population": {"type": ["number", "null"]},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
            "either": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]},
        },
        "$defs": {"tag": {"type": "string"}},
    })
    assert schema["properties"]["name"] == {"type": "string", "maxLength": STRING_MAX_LENGTH}
    assert schema["properties"]["population"]["maximum"] == NUMBER_BOUND
    assert schema["properties"]["population"]["minimum"] == -NUMBER_BOUND
    assert schema["properties"]["population"]["multipleOf"] == 10**-FRACTION_DIGITS
    assert schema["properties"]["either"]["anyOf"] == [
        {"type": "integer", "minimum": -NUMBER_BOUND, "maximum": NUMBER_BOUND}, {"type": "boolean"}
    ]
    assert schema["$defs"]["tag"]["maxLength"] == STRING_MAX_LENGTH


def test_the_clients_own_bounds_are_kept():
    given = [
        {"type": "number", "minimum": 0, "maximum": 5, "multipleOf": 0.5},
        {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
        {"type": "string", "maxLength": 5000},
        {"type": "string", "pattern": "^[a-z]+$"},
        {"type": "string", "format": "date"},
        {"type": "string", "enum": ["a", "b"]},
        {"type": "object"},
    ]
    for schema in given:
        assert bounded(schema) == schema
    assert bounded({"type": "integer", "minimum": 0}) == {"type": "integer", "minimum": 0, "maximum": NUMBER_BOUND}
