"""Content negotiation that answers in the view's own format instead of 406.

The generation endpoints answer JSON, or a Server-Sent Events stream (a streaming
response that no DRF renderer produces). Standard SSE clients send
`Accept: text/event-stream`, and other clients send what they like; refusing them with
406 helps nobody, so a request whose Accept matches no renderer gets the first one.
"""

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation


class FallbackContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type
