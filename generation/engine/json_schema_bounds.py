"""Default bounds on the numbers and strings of a JSON schema, so that structured output ends.

The engine's grammar (llguidance) allows whatever the schema allows, and a number or a
string with no bound in the schema (a Pydantic `float` or `str`, as the openai SDK's
`parse` sends them) lets a small model run on until max_tokens: `"population_millions":
1112222...` from Gemma 3 270M, and `1.1111...` with only a maximum (the grammar bounds the
digits before the point, not after it). Where the schema gives none of its own:

- a number or an integer gets `minimum` -10^15 and `maximum` 10^15 (at most 16 digits
  before the point);
- a number gets `multipleOf` 10^-FRACTION_DIGITS (at most that many digits after it),
  which llguidance enforces digit by digit;
- a string gets `maxLength` STRING_MAX_LENGTH, unless a `pattern` or a `format` already
  says what it holds.

A client that wants other bounds gives them in its schema (`minimum`, `maximum`,
`exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`, `maxLength`, `pattern`): a bound it gives is kept,
and only a missing one is added. `enum` and `const` values are left as they are.
"""

import json

NUMBER_BOUND = 10**15
FRACTION_DIGITS = 6
STRING_MAX_LENGTH = 256

# Where a schema holds other schemas: keywords whose value is one, a list of them, or a
# mapping of names to them.
ONE = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else")
SEVERAL = ("anyOf", "allOf", "oneOf", "prefixItems")
BY_NAME = ("properties", "patternProperties", "$defs", "definitions")


def with_default_bounds(json_schema: str) -> str:
    """The schema (JSON text) with the default bounds added where it has none."""
    schema = json.loads(json_schema)
    _bound(schema)
    return json.dumps(schema)


def _types(schema: dict) -> set:
    types = schema.get("type")
    return set(types) if isinstance(types, list) else {types}


def _bound(schema) -> None:
    if not isinstance(schema, dict):
        return
    if "enum" not in schema and "const" not in schema:
        types = _types(schema)
        if types & {"number", "integer"}:
            if "minimum" not in schema and "exclusiveMinimum" not in schema:
                schema["minimum"] = -NUMBER_BOUND
            if "maximum" not in schema and "exclusiveMaximum" not in schema:
                schema["maximum"] = NUMBER_BOUND
        if "number" in types and "multipleOf" not in schema:
            schema["multipleOf"] = 10**-FRACTION_DIGITS
        if "string" in types and not {"maxLength", "pattern", "format"} & schema.keys():
            schema["maxLength"] = STRING_MAX_LENGTH
    for key in ONE:
        _bound(schema.get(key))
    for key in SEVERAL:
        if isinstance(schema.get(key), list):
            for subschema in schema[key]:
                _bound(subschema)
    for key in BY_NAME:
        if isinstance(schema.get(key), dict):
            for subschema in schema[key].values():
                _bound(subschema)
