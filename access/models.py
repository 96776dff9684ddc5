"""API keys, their per-minute limits, and the usage per key (or none), model and day."""

from django.db import models
from django.utils.functional import cached_property

from catalog.models import ModelEntry


class ApiKey(models.Model):
    """A key clients send as `Authorization: Bearer <key>`. Only its SHA-256 is stored."""

    name = models.CharField(max_length=200, help_text="Who or what uses this key.")
    prefix = models.CharField(max_length=16, editable=False, help_text="The key's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Generation requests per minute. Empty: no limit."
    )
    tokens_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Prompt and generated tokens per minute. Empty: no limit."
    )
    allowed_models = models.ManyToManyField(
        ModelEntry, blank=True, help_text="Models this key may use. None selected: every model the service serves."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ("-created_at",)

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def has_rate_limits(self) -> bool:
        return self.requests_per_minute is not None or self.tokens_per_minute is not None

    @cached_property
    def allowed_model_ids(self) -> frozenset[str]:
        """The ids of the models this key may use (empty: every model); read once per instance.
        access.selectors.active_key reads them with the key, so that a request's checks need no query."""
        return frozenset(self.allowed_models.values_list("model_id", flat=True))


class RateWindow(models.Model):
    """What a key used in one minute: the counters its per-minute limits are checked against.

    Kept in the database (not in process memory) so that every process and replica sees
    the same counts; rows of past minutes are deleted as new ones are made.
    """

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="rate_windows")
    minute = models.DateTimeField(help_text="Start of the minute.")
    requests = models.PositiveIntegerField(default=0)
    tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=("api_key", "minute"), name="one_rate_window_per_key_minute")]


class DailyUsage(models.Model):
    """What one key (or the requests without a key) used of one model on one day (UTC).

    Each generation that started (finished, failed or cancelled) adds to one row; totals
    per key or model, and the charts, are sums over these rows. Rows older than
    LLM_USAGE_RETENTION_DAYS are deleted (access.services).

    Latency is kept as sums and maxima, which add up row by row: a day's mean is its sum
    over the finished generations, its maximum the largest of its rows'.
    """

    day = models.DateField(db_index=True)
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="daily_usage",
        help_text="Empty: requests without an API key.",
    )
    model_id = models.CharField(max_length=200)
    requests = models.PositiveBigIntegerField(
        default=0, help_text="Generations that started: finished, failed and cancelled."
    )
    finished = models.PositiveBigIntegerField(default=0, help_text="Generations that ran to their end.")
    failed = models.PositiveBigIntegerField(default=0, help_text="Generations the engine failed after they started.")
    cancelled = models.PositiveBigIntegerField(
        default=0, help_text="Generations whose client went away before they ended."
    )
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    generated_tokens = models.PositiveBigIntegerField(default=0, help_text="Of failed and cancelled ones too.")
    # Of the finished generations only, from the request reaching the core (queueing included).
    duration_ms_sum = models.PositiveBigIntegerField(default=0)
    duration_ms_max = models.PositiveBigIntegerField(default=0)
    time_to_first_token_ms_sum = models.PositiveBigIntegerField(default=0)
    time_to_first_token_ms_max = models.PositiveBigIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "usage"
        verbose_name_plural = "usage"
        ordering = ("-day", "model_id")
        constraints = [
            # Two partial constraints: a NULL key is distinct from every other in a plain one.
            models.UniqueConstraint(
                fields=("day", "api_key", "model_id"), condition=models.Q(api_key__isnull=False),
                name="one_usage_row_per_day_key_model",
            ),
            models.UniqueConstraint(
                fields=("day", "model_id"), condition=models.Q(api_key__isnull=True),
                name="one_usage_row_per_day_model_without_key",
            ),
        ]

    def __str__(self):
        return f"{self.api_key.name if self.api_key else 'No key'} on {self.model_id}, {self.day}"
