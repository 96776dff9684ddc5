"""Reads of the catalog, with the environment's bounds applied.

Precedence (documented in the README):
- A model is servable when its entry is enabled AND, if LLM_ALLOWED_MODELS is set, its
  id is in that list: the environment is a ceiling the admin cannot widen.
- A request names a model by its id or by one of its aliases; LLM_ALLOWED_MODELS, API keys'
  lists and the responses' `model` name the id.
- The default model is the admin's choice (service settings), else LLM_DEFAULT_MODEL.
- max_tokens is bounded by the smaller of LLM_MAX_TOKENS_LIMIT and the admin's limit.
- Sampling defaults: the request, then the model entry, then the service settings,
  then the environment.
"""

from dataclasses import dataclass, replace

from django.conf import settings

from catalog.engine_settings import EngineConfig
from catalog.models import ModelEntry, ServiceSettings
from catalog.sampling import SamplingParams
from catalog.snapshot import Catalog
from common.errors import ModelNotAllowed, ModelNotFound


@dataclass(frozen=True)
class ServableModel:
    model_id: str
    capabilities: tuple[str, ...]
    chat_template: str
    bos_token: str
    eos_token: str
    chat_stop_sequences: tuple[str, ...]
    defaults: SamplingParams  # temperature and max_tokens always set
    max_tokens_limit: int
    engine: EngineConfig


def _env_allows(model_id: str) -> bool:
    return not settings.LLM_ALLOWED_MODELS or model_id in settings.LLM_ALLOWED_MODELS


def allowed_models() -> list[ModelEntry]:
    """The entries clients may use, in catalog order."""
    return [entry for entry in ModelEntry.objects.filter(enabled=True) if _env_allows(entry.model_id)]


def entries_within_environment() -> list[ModelEntry]:
    """Every entry that LLM_ALLOWED_MODELS allows, enabled or not, in catalog order (the admin's playground)."""
    return [entry for entry in ModelEntry.objects.all() if _env_allows(entry.model_id)]


def max_tokens_limit(service: ServiceSettings) -> int:
    if service.max_tokens_limit:
        return min(service.max_tokens_limit, settings.LLM_MAX_TOKENS_LIMIT)
    return settings.LLM_MAX_TOKENS_LIMIT


def default_model_id(service: ServiceSettings, *, chat: bool = False) -> str:
    """The model of a request that names none: for a chat, the chat default when one is set."""
    if chat and service.default_chat_model is not None:
        return service.default_chat_model.model_id
    if chat and settings.LLM_DEFAULT_CHAT_MODEL:
        return settings.LLM_DEFAULT_CHAT_MODEL
    if service.default_model is not None:
        return service.default_model.model_id
    return settings.LLM_DEFAULT_MODEL


def engine_config(entry: ModelEntry) -> EngineConfig:
    return EngineConfig(
        model_id=entry.model_id,
        source=entry.source,
        location=entry.location,
        filename=entry.filename,
        tokenizer_json=entry.tokenizer_json,
        context_length=entry.context_length,
        in_situ_quant=entry.in_situ_quant,
        max_seqs=entry.max_seqs,
        seed=entry.seed,
        prefix_cache_n=entry.prefix_cache_n,
        kv_cache_memory=entry.kv_cache_memory or settings.LLM_ENGINE_KV_CACHE_MEMORY,
        kv_cache_block_size=entry.kv_cache_block_size,
    )


def resolve_model(
    catalog: Catalog, *, model_id: str | None, chat: bool = False, include_disabled: bool = False
) -> ServableModel:
    """The servable model a request names (or the default for its kind), with its effective defaults.

    `catalog` is catalog.snapshot's: no database is read here, and the servable model is
    made once per snapshot (kept in `catalog.servable`). `include_disabled` lets a
    disabled entry through (the admin's playground, where staff try an entry before
    enabling it); LLM_ALLOWED_MODELS still applies.
    """
    service = catalog.service
    model_id = model_id or default_model_id(service, chat=chat)
    entry = catalog.entry_named(model_id)  # an alias resolves to its entry; the allowlists name the id
    if entry is None:
        raise ModelNotFound(f"Model {model_id!r} does not exist.", field="model")
    if not (entry.enabled or include_disabled) or not _env_allows(entry.model_id):
        raise ModelNotAllowed(f"Model {model_id!r} is not allowed on this service.", field="model")
    servable = catalog.servable.get(entry.model_id)
    if servable is None:  # the entry's first request on this snapshot (two at once make the same one)
        servable = catalog.servable[entry.model_id] = servable_model(entry, service)
    return servable


def servable_model(entry: ModelEntry, service: ServiceSettings) -> ServableModel:
    """An entry with the defaults and limits in effect for it."""
    limit = max_tokens_limit(service)
    return ServableModel(
        model_id=entry.model_id,
        capabilities=tuple(entry.capabilities),
        chat_template=entry.chat_template,
        bos_token=entry.bos_token,
        eos_token=entry.eos_token,
        chat_stop_sequences=tuple(entry.chat_stop_sequences),
        defaults=sampling_defaults(entry, service, limit=limit),
        max_tokens_limit=limit,
        engine=engine_config(entry),
    )


def sampling_defaults(entry: ModelEntry, service: ServiceSettings, *, limit: int) -> SamplingParams:
    """What a request that sets no sampling parameter gets: the entry's defaults, then the
    service settings', then the environment's; max_tokens within the limit."""
    of_entry = SamplingParams(
        max_tokens=entry.default_max_tokens,
        temperature=entry.default_temperature,
        top_p=entry.default_top_p,
        top_k=entry.default_top_k,
        repetition_penalty=entry.default_repetition_penalty,
    )
    of_service = SamplingParams(max_tokens=service.default_max_tokens, temperature=service.default_temperature)
    of_environment = SamplingParams(
        max_tokens=settings.LLM_DEFAULT_MAX_TOKENS, temperature=settings.LLM_DEFAULT_TEMPERATURE
    )
    defaults = of_entry.merged_over(of_service).merged_over(of_environment)
    return replace(defaults, max_tokens=min(limit, defaults.max_tokens))


def startup_engine_configs() -> list[EngineConfig]:
    """Engines to load when the server starts."""
    return [engine_config(entry) for entry in allowed_models() if entry.load_at_startup]

