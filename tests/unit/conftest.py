import pytest


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Users made and logged in here need no costly hash (the servers of tests/e2e keep the real one)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
