"""What every HTTP generation view shares, whatever its wire format."""

from common.errors import ServiceError
from generation.core.observation import refused_before_core
from generation.core.service import Generation, prepare_generation
from generation.core.request import GenerationRequest


class GenerationViewMixin:
    """An endpoint name for metrics and traces, and every request counted once with its outcome.

    The generation core counts what reaches it (refused, finished, failed, abandoned);
    a request refused before that (its API key, a body that does not parse, a field out of
    range) is counted here.
    """

    endpoint = ""
    # The core's names of request fields -> this wire format's (or this request's), for the `field` of an error.
    wire_fields: dict[str, str] = {}
    _reached_core = False

    async def prepare(self, request: GenerationRequest) -> Generation:
        self._reached_core = True
        return await prepare_generation(request)

    def handle_exception(self, exc):
        if isinstance(exc, ServiceError) and exc.field in self.wire_fields:
            exc.field = self.wire_fields[exc.field]
        response = super().handle_exception(exc)
        if not self._reached_core:
            refused_before_core(self.endpoint, response.status_code)
        return response
