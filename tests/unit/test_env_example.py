""".env.example is the one list of the settings: every LLM_*, DJANGO_* and DATABASE_* name the
settings read is there, with a comment."""

import re

from tests.support.server import ROOT

SETTING = re.compile(r"""["']((?:LLM|DJANGO|DATABASE)_[A-Z0-9_]+)["']""")


def settings_sources() -> list:
    package = ROOT / "inference_service"
    return sorted([*package.glob("settings*.py"), *package.glob("settings/**/*.py")])


def test_every_setting_read_is_in_env_example():
    sources = settings_sources()
    assert sources
    read = {name for path in sources for name in SETTING.findall(path.read_text())}
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "LLM_MAX_TOKENS_LIMIT"} <= read
    lines = (ROOT / ".env.example").read_text().splitlines()
    documented = {}
    for number, line in enumerate(lines):
        if match := re.fullmatch(r"# ([A-Z][A-Z0-9_]*)=.*", line):
            documented[match.group(1)] = number
    missing = sorted(read - documented.keys())
    assert not missing, f"not in .env.example: {missing}"
    for name in read:
        # Above each setting, or the group of settings it belongs to, a comment says what it is.
        number = documented[name]
        while number > 0 and re.fullmatch(r"# [A-Z][A-Z0-9_]*=.*", lines[number - 1]):
            number -= 1
        comment = lines[number - 1] if number > 0 else ""
        assert comment.startswith("# ") and not comment.startswith("# ---"), f"{name} has no comment in .env.example"
