"""The generation core: the request path from admission to the last event."""
