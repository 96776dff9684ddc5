"""The bearer key in the OpenAPI schema, so that Swagger UI's "Authorize" sends it."""

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerKeyScheme(OpenApiAuthenticationExtension):
    target_class = "access.authentication.BearerKeyAuthentication"
    name = "ApiKey"

    def get_security_requirement(self, auto_schema):
        # With LLM_REQUIRE_API_KEY off a key is optional (a valid one brings its limits):
        # the empty requirement says that no key is accepted too.
        if settings.LLM_REQUIRE_API_KEY:
            return {self.name: []}
        return [{self.name: []}, {}]

    def get_security_definition(self, auto_schema):
        required = "required on every API call" if settings.LLM_REQUIRE_API_KEY else "optional on this service"
        return {"type": "http", "scheme": "bearer", "description": f"An API key made in the admin ({required})."}
