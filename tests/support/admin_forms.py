"""Driving the Django admin over HTTP as a browser would: log in, read a form, post it back."""

import contextlib
from html.parser import HTMLParser

import httpx


class _FormFields(HTMLParser):
    """The fields a browser would submit from the page's main form."""

    def __init__(self):
        super().__init__()
        self.fields: dict[str, str] = {}
        self._textarea = None
        self._select = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in ("submit", "button", "file"):
            if attrs.get("type") in ("checkbox", "radio"):
                if "checked" in attrs:
                    self._add(name, attrs.get("value", "on"))
            else:
                self.fields[name] = attrs.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = ""
        elif tag == "select" and name:
            self._select = name
            self.fields.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in attrs:
            self.fields[self._select] = attrs.get("value", "")

    def _add(self, name: str, value: str):
        """Checkboxes of one name (a multiple choice) send every checked value."""
        if name in self.fields:
            previous = self.fields[name]
            self.fields[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            self.fields[name] = value

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data):
        if self._textarea:
            self.fields[self._textarea] += data


def form_fields(html: str) -> dict[str, str | list[str]]:
    parser = _FormFields()
    parser.feed(html)
    return parser.fields


@contextlib.contextmanager
def admin_session(base_url: str, username: str, password: str):
    """A client logged in to the admin."""
    with httpx.Client(base_url=base_url, timeout=120, follow_redirects=True) as client:
        fields = form_fields(client.get("/admin/login/").text)
        response = client.post(
            "/admin/login/?next=/admin/",
            data={**fields, "username": username, "password": password},
            headers={"Referer": f"{base_url}/admin/login/"},
        )
        assert "Log out" in response.text, "admin login failed"
        yield client


def change_form(client: httpx.Client, path: str, **changes: str) -> httpx.Response:
    """Open an admin change form, change some fields, and save it."""
    fields = form_fields(client.get(path).text)
    fields.update(changes)
    fields = {name: value for name, value in fields.items() if value is not None}
    return client.post(path, data={**fields, "_save": "Save"}, headers={"Referer": f"{client.base_url}{path}"})
