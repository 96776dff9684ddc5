"""JSON from clients, checked for what Python and the engine cannot take.

Every API (the REST parsers and the WebSocket) reads client JSON here, so that input no
part of the service can handle is refused up front as invalid, instead of failing later
inside a view, a serializer or the engine (a 500, or worse, inside a stream):

- nesting deeper than MAX_DEPTH: deep enough for any real request, and far from the
  RecursionError that Python's own JSON functions (and DRF's JSONField) raise at about 1000;
- NaN and Infinity, which Python accepts but JSON does not have;
- lone surrogates (`"\\ud800"` is valid JSON, but not Unicode text): they cannot be
  encoded to UTF-8, which the tokenizer and the engine's Rust strings need.
"""

import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 64


class InvalidJSON(ValueError):
    pass


def loads(text: str | bytes) -> object:
    """The parsed document; raises InvalidJSON with a message fit for the client."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidJSON(f"The JSON is nested too deeply (at most {MAX_DEPTH} levels).") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidJSON(f"The body is not valid JSON: {exc}") from None
    check_document(data)
    return data


def _refuse_constant(name: str):
    raise InvalidJSON(f"{name} is not a JSON value.")


def check_document(data: object) -> None:
    """Raise InvalidJSON for nesting past MAX_DEPTH or a string that is not valid Unicode."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise InvalidJSON(f"The JSON is nested too deeply (at most {MAX_DEPTH} levels).")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key)
                    pending.append((item, depth + 1))
            else:
                pending.extend((item, depth + 1) for item in value)


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJSON("The JSON holds a string that is not valid Unicode (a lone surrogate).") from None


class ClientJSONParser(JSONParser):
    """DRF's JSON parser, reading through `loads`."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return loads(stream.read())
        except InvalidJSON as exc:
            raise ParseError(str(exc)) from None
