"""Plotly's JavaScript, served by this service from the `plotly` package (no CDN: deployments
are air-gapped), for the usage charts of the admin.

The package ships the whole plotly.js bundle; PlotlyFinder exposes that one file to
Django's static files as `plotly/plotly.min.js` (served by the server's static handler, and
copied by `collectstatic` where a proxy serves static files).

Under the Content-Security-Policy (style-src 'self', no inline style) plotly.js must not
inject its <style> elements: it skips its own when an element with its id and the class
`no-inline-styles` is on the page (our stylesheet, usage_charts.css, carries both), and
the bundle's map library skips its own when an element with its id exists (its ids are
read from the bundle, so that an upgrade of plotly keeps working).
"""

import importlib.util
import re
from functools import lru_cache
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_JS = "plotly/plotly.min.js"
PLOTLY_STYLE_ID = "plotly.js-style-global"
# Found, not imported: the web process needs the package's file, not its Python (7 MB, 0.2 s).
_BUNDLE = Path(importlib.util.find_spec("plotly").origin).parent / "package_data" / "plotly.min.js"
# `if(!document.getElementById("<id>")){var e=document.createElement("style")`, minified.
_GUARDED_STYLE = re.compile(r'getElementById\("([\w.-]+)"\)\)\{var \w+=document\.createElement\("style"\)')


class PlotlyFinder(BaseFinder):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=_BUNDLE.parent)
        self.storage.prefix = "plotly"  # collectstatic copies it to STATIC_ROOT/plotly/plotly.min.js

    def check(self, **kwargs):
        return []

    def find(self, path, find_all=False, **kwargs):
        if path != PLOTLY_JS:
            return [] if find_all else None
        return [str(_BUNDLE)] if find_all else str(_BUNDLE)

    def list(self, ignore_patterns):
        yield _BUNDLE.name, self.storage


@lru_cache(maxsize=1)
def bundled_style_ids() -> tuple[str, ...]:
    """The ids of the <style> elements that plotly.js's bundle adds on load unless one exists."""
    return tuple(dict.fromkeys(_GUARDED_STYLE.findall(_BUNDLE.read_text(encoding="utf-8"))))
