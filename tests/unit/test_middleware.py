"""The middleware stack under ASGI: its hooks run on the event loop, not through threads.

(The admin's session and messages, which do go to a thread to be saved, are exercised
through a real server by tests/e2e/test_catalog.py and tests/e2e/test_api_keys.py.)
"""

import httpx
import pytest
from asgiref.sync import SyncToAsync
from django.core.asgi import get_asgi_application

from inference_service.django_middleware import event_loop_forms


@pytest.fixture
def thread_hops(monkeypatch) -> list[str]:
    """The qualified names of the functions sent to a thread by sync_to_async."""
    hops = []
    original = SyncToAsync.__init__

    def recording(self, func, *args, **kwargs):
        hops.append(getattr(func, "__qualname__", repr(func)))
        original(self, func, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__init__", recording)
    return hops


@pytest.fixture
def served_middleware(settings):
    """MIDDLEWARE as the ASGI application (inference_service.asgi) serves it."""
    settings.MIDDLEWARE = event_loop_forms(settings.MIDDLEWARE)


async def get(path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=get_asgi_application())
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        return await client.get(path)


def middleware_hooks(hops: list[str]) -> list[str]:
    return [hop for hop in hops if ".process_" in hop or hop.endswith("Middleware.__call__")]


async def test_no_middleware_hook_goes_through_a_thread(served_middleware, thread_hops):
    response = await get("/health/live")
    assert response.status_code == 200
    assert response.headers["X-Frame-Options"] == "DENY"  # the stack did run
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert thread_hops, "the recorder saw nothing: the test would pass whatever the stack"
    assert middleware_hooks(thread_hops) == []


@pytest.mark.django_db(transaction=True)  # the schema lists the catalog's model ids
async def test_drf_responses_pass_the_template_response_hooks(served_middleware, thread_hops):
    # A DRF Response has `render`: Django then runs every `process_template_response`.
    response = await get("/api/schema/")
    assert response.status_code == 200
    assert "openapi" in response.text
    assert middleware_hooks(thread_hops) == []


async def test_django_stock_middleware_would_go_through_threads(thread_hops):
    # The same check on the settings as written (Django's own classes): it fails there, so it can fail here.
    response = await get("/health/live")
    assert response.status_code == 200
    assert "SecurityMiddleware.process_request" in middleware_hooks(thread_hops)
