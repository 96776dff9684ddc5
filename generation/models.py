"""Where each server process's models stand, and the admin's commands to every process.

Each server process (each replica, each pod) has a `ServerProcess` row, kept fresh by its
heartbeat (generation.lifecycle.load_state), and one `ModelLoadState` row per model it has loaded
or tried to. `ModelCommand` rows are the admin's "load now", "unload" and "reload": every
process applies each one issued after it started, once.
"""

from datetime import timedelta

from django.db import models
from django.utils import timezone

# A process whose heartbeat is older than this many intervals is gone.
GONE_AFTER_HEARTBEATS = 3


class ServerProcess(models.Model):
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    version = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField()
    last_heartbeat = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ("host", "pid")

    def __str__(self):
        return f"{self.host}:{self.pid}"

    def is_gone(self, heartbeat_seconds: float, now=None) -> bool:
        now = now or timezone.now()
        return self.last_heartbeat < now - timedelta(seconds=GONE_AFTER_HEARTBEATS * heartbeat_seconds)


class ModelLoadState(models.Model):
    class State(models.TextChoices):
        LOADING = "loading"
        LOADED = "loaded"
        FAILED = "failed"  # the load failed, or the engine process died
        UNLOADED = "unloaded"

    process = models.ForeignKey(ServerProcess, on_delete=models.CASCADE, related_name="model_states")
    model_id = models.CharField(max_length=200, db_index=True)
    state = models.CharField(max_length=16, choices=State.choices)
    error = models.TextField(blank=True)
    changed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=("process", "model_id"), name="one_state_per_process_and_model")]

    def __str__(self):
        return f"{self.model_id} on {self.process}: {self.state}"


class ModelCommand(models.Model):
    class Action(models.TextChoices):
        LOAD = "load", "load now"
        UNLOAD = "unload"
        RELOAD = "reload"

    model_id = models.CharField(max_length=200)
    action = models.CharField(max_length=16, choices=Action.choices)
    issued_at = models.DateTimeField(default=timezone.now, db_index=True)
    issued_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ("id",)

    def __str__(self):
        return f"{self.action} {self.model_id}"


class StoredResponse(models.Model):
    """A response of POST /v1/responses made with `store` on (the default): GET and DELETE
    /v1/responses/{id} read it, a later request's `previous_response_id` continues its
    conversation. Only the API key that made it sees it; kept LLM_RESPONSES_RETENTION_DAYS days."""

    response_id = models.CharField(max_length=64, unique=True)
    api_key = models.ForeignKey("access.ApiKey", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(db_index=True)
    # The messages the model was given (less the instructions, which a continuation does not
    # inherit), then its answer: what `previous_response_id` puts before the next input.
    conversation = models.JSONField()
    body = models.JSONField(help_text="The response object, as POST and GET answer it.")

    def __str__(self):
        return self.response_id
