"""The sampling parameters as one plain value, from a request's wire format to the engine.

One type for the three places they appear: a request's parameters (what the client
set), a model's defaults (the catalog entry's, the service settings', the environment's)
and what the engine gets (the request's over the defaults). No Django in here: the value
crosses to each model's worker process, which imports this module without setting Django up.
"""

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class SamplingParams:
    """None (or an empty tuple) is "not set": the defaults', else the engine's own behaviour."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias added to its logit)
    stop: tuple[str, ...] = ()
    json_schema: str | None = None  # JSON text: the output is constrained to JSON valid against it
    top_logprobs: int | None = None  # None: no logprobs; n: each token's logprob and the n most likely

    def merged_over(self, defaults: "SamplingParams") -> "SamplingParams":
        """These parameters, those not set taken from `defaults`."""
        merged = {}
        for field in fields(self):
            value = getattr(self, field.name)
            merged[field.name] = getattr(defaults, field.name) if value is None or value == () else value
        return SamplingParams(**merged)
