from django.contrib import admin
from django.urls import include, path
from django_prometheus.exports import ExportToDjangoView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from generation.api.health import LiveView, ReadyView
from generation.api.native.views import ChatStreamView, ChatView, GenerateStreamView, GenerateView, ModelListView
from generation.api.openai.model_views import ModelsView, ModelView
from generation.api.openai.responses import ResponseDetailView, ResponsesView
from generation.api.openai.views import ChatCompletionsView, CompletionsView
from generation.api.tokenizer import DetokenizeView, TokenizeView
from inference_service.landing import landing

urlpatterns = [
    path("", landing, name="landing"),
    path("api/models", ModelListView.as_view(), name="models"),
    path("api/generate", GenerateView.as_view(), name="generate"),
    path("api/generate/stream", GenerateStreamView.as_view(), name="generate-stream"),
    path("api/chat", ChatView.as_view(), name="chat"),
    path("api/chat/stream", ChatStreamView.as_view(), name="chat-stream"),
    path("api/tokenize", TokenizeView.as_view(), name="tokenize"),
    path("api/detokenize", DetokenizeView.as_view(), name="detokenize"),
    path("v1/models", ModelsView.as_view(), name="openai-models"),
    path("v1/models/<path:model>", ModelView.as_view(), name="openai-model"),  # ids hold a "/"
    path("v1/completions", CompletionsView.as_view(), name="openai-completions"),
    path("v1/chat/completions", ChatCompletionsView.as_view(), name="openai-chat-completions"),
    path("v1/responses", ResponsesView.as_view(), name="openai-responses"),
    path("v1/responses/<str:response_id>", ResponseDetailView.as_view(), name="openai-response"),
    path("health/live", LiveView.as_view(), name="health-live"),
    path("health/ready", ReadyView.as_view(), name="health-ready"),
    path("metrics", ExportToDjangoView, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("swagger-ui/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/playground/", include("workbench.urls")),  # before the admin's own pages
    path("admin/", admin.site.urls),
]

handler400 = "inference_service.error_views.bad_request"
handler404 = "inference_service.error_views.not_found"
handler500 = "inference_service.error_views.server_error"
