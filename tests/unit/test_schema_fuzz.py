"""The OpenAPI schema, generated in process, asks for an API key where the service requires one
(the schema fuzzed against a real server: tests/e2e/test_schema_fuzz.py)."""

import pytest
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator


@pytest.mark.django_db  # the schema lists the catalog's model ids
def test_the_schema_requires_api_keys_where_they_are_required():
    with override_settings(LLM_REQUIRE_API_KEY=True):
        document = SchemaGenerator().get_schema(request=None, public=True)
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path.startswith(("/api/", "/v1/")):
                assert operation["security"] == [{"ApiKey": []}], path
                assert "401" in operation["responses"], path
