"""Liveness and readiness probes for Kubernetes."""

import contextlib
import logging

import redis
from adrf.views import APIView
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError
from django.http import JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers

from catalog.models import ServiceSettings
from catalog.selectors import startup_engine_configs
from generation.lifecycle.runtime import current

logger = logging.getLogger(__name__)


def _channel_layer_state() -> str:
    """"ok" or "unreachable" for the Redis channel layer, "in-memory" without REDIS_URL.

    Reported, not required: while Redis is down the HTTP API still serves (only WebSockets
    and the cross-process catalog signal need it), and taking every replica out of the
    load balancer would turn a Redis outage into a full one.
    """
    if not settings.REDIS_URL:
        return "in-memory"
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
        with contextlib.closing(client):
            client.ping()
        return "ok"
    except redis.RedisError:
        return "unreachable"


def _readiness() -> dict:
    """What readiness depends on, read as every request reads it: the catalog tables, the
    start-up models of the catalog as it is now (one disabled since start-up no longer
    counts; one failing to load does, until it loads or leaves the catalog), and the
    loaded models' workers (one that has stopped answering does, until the watchdog has
    killed it: generation.engine.watchdog)."""
    try:
        configs = startup_engine_configs()
        ServiceSettings.objects.first()
    except DatabaseError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {"database_ok": False, "models_loaded": False, "errors": {"database": first_line}}
    runtime = current()
    cache, startup_loads = runtime.engine_cache, runtime.startup_loads
    errors = dict(startup_loads.errors)
    for config in configs:
        failure = cache.failure(config)
        if failure is not None:
            errors[config.model_id] = failure.message
    for model_id, state in cache.model_states().items():
        if state["state"] == "unresponsive":
            errors[model_id] = state["error"]
    return {"database_ok": True, "models_loaded": startup_loads.finished.is_set() and not errors, "errors": errors}


READINESS = inline_serializer(
    "Readiness",
    {
        "status": serializers.ChoiceField(choices=["ok", "loading", "error", "draining"]),
        "llm_models_loaded": serializers.BooleanField(),
        "database": serializers.ChoiceField(choices=["ok", "unreachable"]),
        "loaded_models": serializers.ListField(child=serializers.CharField()),
        "channel_layer": serializers.ChoiceField(choices=["in-memory", "ok", "unreachable"]),
        "errors": serializers.DictField(child=serializers.CharField()),
        "models": serializers.DictField(
            child=inline_serializer(
                "ModelState",
                {
                    "state": serializers.ChoiceField(
                        choices=["loading", "loaded", "unresponsive", "failed", "stopped", "crashed"]
                    ),
                    "error": serializers.CharField(allow_null=True),
                    "load_seconds": serializers.FloatField(allow_null=True),
                    "pid": serializers.IntegerField(allow_null=True),
                },
            ),
            help_text="Each model this process has loaded or tried to, with its engine worker's state.",
        ),
    },
)


class LiveView(APIView):
    authentication_classes = ()  # probes never carry an API key
    @extend_schema(
        summary="Liveness: 200 while the process runs",
        responses={200: inline_serializer("Live", {"status": serializers.CharField()})},
        tags=["health"],
    )
    async def get(self, request):
        return JsonResponse({"status": "alive"})


class ReadyView(APIView):
    authentication_classes = ()
    @extend_schema(
        summary="Readiness: 200 once the start-up models are loaded and the catalog can be read",
        description="503 while the server drains before it stops, while start-up models load, while one of the catalog's start-up models fails to load, "
        "while a loaded model's engine worker does not answer (until it is killed as hung), "
        "or when the catalog tables cannot be read (database unreachable, missing, corrupt or locked).",
        responses={(200, "application/json"): READINESS, (503, "application/json"): READINESS},
        tags=["health"],
    )
    async def get(self, request):
        # Ready once the start-up loads have run and none of the catalog's start-up models
        # is failing; a model unloaded later (disabled in the admin, evicted) does not make
        # the process unready.
        readiness = await sync_to_async(_readiness)()
        database_ok, models_loaded, errors = readiness["database_ok"], readiness["models_loaded"], readiness["errors"]
        if current().draining.is_set():
            status = "draining"  # shutting down: send new requests elsewhere
        elif not database_ok or errors:
            status = "error"
        elif not models_loaded:
            status = "loading"
        else:
            status = "ok"  # the original service's word, which its clients check
        body = {
            "status": status,
            "llm_models_loaded": models_loaded,
            "database": "ok" if database_ok else "unreachable",
            "loaded_models": current().engine_cache.loaded_model_ids(),
            "channel_layer": await sync_to_async(_channel_layer_state)(),
            "errors": errors,
            "models": current().engine_cache.model_states(),
        }
        response = JsonResponse(body, status=200 if status == "ok" else 503)
        # Django logs every 5xx at ERROR. A readiness 503 is an answer, not a fault: while
        # models load or the server drains it is routine; a failing model or an unreachable
        # database is for an operator to act on.
        if status != "ok":
            level = logging.WARNING if status == "error" else logging.DEBUG
            logger.log(level, "not ready: %s %s", status, errors or "", extra={"readiness": status})
            response._has_been_logged = True  # what django.utils.log.log_response checks
        return response
