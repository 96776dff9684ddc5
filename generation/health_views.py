"""Liveness and readiness probes for Kubernetes."""

from adrf.views import APIView
from asgiref.sync import sync_to_async
from django.db import connection
from django.http import JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers

from generation.service import engine_cache
from generation.startup import startup_loads


def _database_reachable() -> bool:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


READINESS = inline_serializer(
    "Readiness",
    {
        "status": serializers.ChoiceField(choices=["ready", "loading", "error"]),
        "llm_models_loaded": serializers.BooleanField(),
        "database": serializers.ChoiceField(choices=["ok", "unreachable"]),
        "loaded_models": serializers.ListField(child=serializers.CharField()),
        "errors": serializers.DictField(child=serializers.CharField()),
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
        summary="Readiness: 200 once the start-up models are loaded and the database answers",
        description="503 while start-up models load, when one failed to load, or when the database is unreachable.",
        responses={(200, "application/json"): READINESS, (503, "application/json"): READINESS},
        tags=["health"],
    )
    async def get(self, request):
        database_ok = await sync_to_async(_database_reachable)()
        # Ready once every start-up model has loaded; a model unloaded later (disabled in
        # the admin, evicted) does not make the process unready.
        models_loaded = startup_loads.finished.is_set() and not startup_loads.errors
        errors = dict(startup_loads.errors)
        if not database_ok or errors:
            status = "error"
        elif not models_loaded:
            status = "loading"
        else:
            status = "ready"
        body = {
            "status": status,
            "llm_models_loaded": models_loaded,
            "database": "ok" if database_ok else "unreachable",
            "loaded_models": engine_cache().loaded_model_ids(),
            "errors": errors,
        }
        return JsonResponse(body, status=200 if status == "ready" else 503)
