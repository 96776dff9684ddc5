"""API keys, their per-minute limits and the usage they record."""

from django.db import models

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


class KeyUsage(models.Model):
    """Totals per key and model, shown in the admin."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage")
    model_id = models.CharField(max_length=200)
    requests = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    generated_tokens = models.PositiveBigIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "usage"
        verbose_name_plural = "usage"
        constraints = [models.UniqueConstraint(fields=("api_key", "model_id"), name="one_usage_row_per_key_model")]

    def __str__(self):
        return f"{self.api_key.name} on {self.model_id}"
