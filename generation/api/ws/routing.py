"""WebSocket routes (Channels)."""

from django.urls import path

from generation.api.ws.consumers import GenerationConsumer

websocket_urlpatterns = [path("ws/generate/", GenerationConsumer.as_asgi())]
