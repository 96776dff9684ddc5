"""OpenAI's model list: GET /v1/models and GET /v1/models/{model}, the catalog's models as
OpenAI's model objects (with the native list's fields beside OpenAI's)."""

from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response

from access.selectors import model_ids_of_key
from common.errors import ModelNotFound
from generation.api.openai.serializers import OpenAIErrorSerializer, OpenAIModelListSerializer, OpenAIModelSerializer
from generation.api.openai.views import OpenAIView
from generation.api.openapi import LISTING_ERRORS, error_responses, operation
from generation.api.summaries import model_summaries
from generation.core.service import listed_models


def listed_for_key(api_key) -> list:
    """The models GET /v1/models lists: those the service serves, less those the API key may not use."""
    allowed = model_ids_of_key(api_key=api_key)
    return [entry for entry in listed_models() if allowed is None or entry.model_id in allowed]


def openai_models(models: list) -> list[dict]:
    """Catalog entries as OpenAI's model objects."""
    return [
        {
            "id": entry.model_id,
            "object": "model",
            "created": int(entry.created_at.timestamp()),
            "owned_by": entry.model_id.split("/")[0] if "/" in entry.model_id else "local",
            # Beyond OpenAI's fields, as vLLM and llama-server add theirs.
            "aliases": summary["aliases"],
            "context_length": summary["context_length"],
            "max_tokens_limit": summary["max_tokens_limit"],
            "defaults": summary["defaults"],
        }
        for entry, summary in zip(models, model_summaries(models))
    ]


class ModelsView(OpenAIView):
    @operation(
        summary="List the models (OpenAI-compatible)",
        description="The models this service serves (with an API key limited to some models, only those), each "
        "once by its id, with its `aliases`: a request may send either as `model`.",
        responses={200: OpenAIModelListSerializer},
        errors=error_responses(OpenAIErrorSerializer, LISTING_ERRORS),
        tags=["openai"],
    )
    def get(self, request):
        return Response({"object": "list", "data": openai_models(listed_for_key(request.auth))})


class ModelView(OpenAIView):
    @operation(
        summary="Retrieve a model (OpenAI-compatible)",
        operation_id="v1_model_retrieve",  # the list's is v1_models_retrieve
        description="One model of GET /v1/models, by its id (which may hold a `/`: the rest of the path) or one "
        "of its aliases; the answer's `id` is the model's id. "
        "404 `model_not_found` for a model that list does not show (unknown, disabled, or not allowed to "
        "the API key).",
        responses={200: OpenAIModelSerializer},
        errors=error_responses(
            OpenAIErrorSerializer, (*LISTING_ERRORS, 404), {404: "No such model among those GET /v1/models lists."}
        ),
        parameters=[
            OpenApiParameter(
                "model", str, OpenApiParameter.PATH,
                description="A model's id, `/` included (e.g. `google/gemma-3-270m`), or one of its aliases.",
            ),
        ],
        tags=["openai"],
    )
    def get(self, request, model: str):
        entries = [entry for entry in listed_for_key(request.auth) if model in (entry.model_id, *entry.aliases)]
        if not entries:
            raise ModelNotFound(f"The model {model!r} does not exist or is not available.", field="model")
        return Response(openai_models(entries)[0])
