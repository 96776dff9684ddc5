"""The client's address for django-axes (AXES_CLIENT_IP_CALLABLE), which locks admin logins out per
username and address."""


def axes_client_address(request) -> str | None:
    """The client's address as the rest of the service sees it: Daphne sets REMOTE_ADDR from
    X-Forwarded-For when LLM_PROXY_HEADERS is on, and from the socket otherwise (a client
    cannot pick its address then). Named in the settings so that django-axes never reads
    forwarding headers itself (as it would through django-ipware, were that installed)."""
    return request.META.get("REMOTE_ADDR")
