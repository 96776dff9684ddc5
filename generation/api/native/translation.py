"""The native API's request (/api/generate, /api/chat, and the WebSocket's) as the core's.

The one place where the native wire format's names meet the core's: `format` is the
core's `json_schema`; the other fields have the same names on both sides.
"""

from catalog.sampling import SamplingParams
from generation.service import GenerationRequest

# The core's names of request fields -> the native API's, for the `field` of an error.
WIRE_FIELDS = {"json_schema": "format"}


def to_generation_request(validated: dict, *, endpoint: str, api_key=None) -> GenerationRequest:
    """A native request, as GenerateRequestSerializer or ChatRequestSerializer validated it."""
    messages = validated.get("messages")
    return GenerationRequest(
        model=validated.get("model"),
        prompt=validated.get("prompt"),
        messages=None if messages is None else tuple(
            {"role": message["role"], "content": message["content"]} for message in messages
        ),
        sampling=SamplingParams(
            max_tokens=validated.get("max_tokens"),
            temperature=validated.get("temperature"),
            top_p=validated.get("top_p"),
            top_k=validated.get("top_k"),
            repetition_penalty=validated.get("repetition_penalty"),
            stop=tuple(validated.get("stop", ())),
            json_schema=validated.get("format"),  # FormatField made it the schema's text
        ),
        endpoint=endpoint,
        api_key=api_key,
    )
