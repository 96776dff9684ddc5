"""The OpenAPI schema tells the truth, fuzzed in process: schemathesis generates requests for every
operation of /api/schema/ (valid and invalid ones, and every parameter's boundaries), calls the ASGI
application with them, and runs on each response the checks of tests/support/schema_fuzz.py. The
fake engine answers (tests.support.fake_worker); a few cases per operation against a real server
and engine: tests/e2e/test_schema_fuzz.py. And the schema asks for an API key where the service
requires one."""

import pytest
import schemathesis
from django.core.asgi import get_asgi_application
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator

from inference_service.django_middleware import event_loop_forms
from tests.support.schema_fuzz import MAX_TOKENS_LIMIT, call_and_validate, fuzz_config, fuzz_settings

MAX_EXAMPLES = 20


@pytest.fixture
def api_schema(engine, settings):
    """The schema as the application serves it, with the fuzz server's limits: generations of at most
    MAX_TOKENS_LIMIT tokens (the schema's maximum), one by default."""
    settings.LLM_MAX_TOKENS_LIMIT = MAX_TOKENS_LIMIT
    settings.LLM_DEFAULT_MAX_TOKENS = 1
    # The HTTP application as inference_service.asgi builds it, whose import would change MIDDLEWARE
    # for every later test: here the `settings` fixture puts it back.
    settings.MIDDLEWARE = event_loop_forms(settings.MIDDLEWARE)
    application = get_asgi_application()
    schema = schemathesis.openapi.from_asgi("/api/schema/?format=json", application, config=fuzz_config(MAX_EXAMPLES))
    max_tokens = schema.raw_schema["components"]["schemas"]["GenerateRequest"]["properties"]["max_tokens"]
    assert max_tokens["maximum"] == MAX_TOKENS_LIMIT
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.django_db(transaction=True)  # the views read and write the database from other threads
@schema.parametrize()
@fuzz_settings(MAX_EXAMPLES)
def test_every_operation_keeps_to_its_schema(case):
    call_and_validate(case)


@pytest.mark.django_db  # the schema lists the catalog's model ids
def test_the_schema_requires_api_keys_where_they_are_required():
    with override_settings(LLM_REQUIRE_API_KEY=True):
        document = SchemaGenerator().get_schema(request=None, public=True)
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path.startswith(("/api/", "/v1/")):
                assert operation["security"] == [{"ApiKey": []}], path
                assert "401" in operation["responses"], path
