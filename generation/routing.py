"""WebSocket routes (Channels)."""

from django.urls import path

from generation.consumers import GenerationConsumer

websocket_urlpatterns = [path("ws/generate/", GenerationConsumer.as_asgi())]
