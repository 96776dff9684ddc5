"""The ranges of the sampling parameters, for requests and catalog defaults alike.

Values outside them are refused with a 400 (requests) or a form error (admin) instead of
reaching the engine, where mistral.rs 0.9.5 fails: a repetition penalty of 0 or under
about 1e-37 makes NaN logits ("Invalid sampling probability"), and a `top_k` beyond 64
bits raises OverflowError in its Python binding.
"""

TEMPERATURE = (0.0, 2.0)
TOP_P = (0.0, 1.0)
# No vocabulary is larger; the engine treats any top_k over the vocabulary as "all".
TOP_K = (1, 1_000_000)
REPETITION_PENALTY = (0.01, 10.0)
# OpenAI's seed is a 64-bit integer.
SEED = (-(2**63), 2**64 - 1)
STOP_SEQUENCE_MAX_CHARS = 256
# OpenAI's ranges for the parameters only its API takes.
PRESENCE_PENALTY = FREQUENCY_PENALTY = (-2.0, 2.0)
MIN_P = (0.0, 1.0)
LOGIT_BIAS = (-100.0, 100.0)
LOGIT_BIAS_MAX_TOKENS = 300
TOP_LOGPROBS = (0, 20)  # chat; completions take 0 to 5
