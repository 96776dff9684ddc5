"""ASGI entry point: HTTP through Django, WebSocket through Channels.

Served by `manage.py serve`, which also starts the process's runtime (generation.lifecycle.runtime).
"""

import os

import django
from django.conf import settings
from django.core.asgi import get_asgi_application

from inference_service.telemetry import configure_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inference_service.settings")
django.setup(set_prefix=False)
# Both before the request handler is built, which reads MIDDLEWARE once.
configure_tracing()  # may add the tracing middleware
from inference_service.django_middleware import event_loop_forms  # noqa: E402  (needs Django set up)

settings.MIDDLEWARE = event_loop_forms(settings.MIDDLEWARE)
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up)
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from generation.api.ws.routing import websocket_urlpatterns  # noqa: E402
from workbench.playground_consumer import websocket_urlpatterns as playground_websocket_urlpatterns  # noqa: E402

# Static files (Swagger UI's own JS and CSS, the admin's) are served by this process:
# deployments are often air-gapped and have no CDN or separate file server.
application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_application),
        # The playground's route checks the Origin and reads the admin session (workbench).
        "websocket": URLRouter(websocket_urlpatterns + playground_websocket_urlpatterns),
    }
)
# The process-wide state (loaded models, start-up loads, heartbeat...) is not started here,
# at import: `manage.py serve` builds and starts it (generation.lifecycle.runtime) before Daphne serves.
