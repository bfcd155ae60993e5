"""The browser sign-in settings are checked at start-up."""

import pytest

from apps.edge.checks import browser_sign_in_settings


def _ids() -> list[str]:
    return [error.id for error in browser_sign_in_settings(None)]


def test_the_defaults_pass(settings):
    settings.POLICYHUB_PUBLIC_URL = "https://policyhub.example.com"
    assert _ids() == []


@pytest.mark.parametrize("url", ["policyhub.example.com", "ftp://policyhub.example.com", "https://x.test/?a=1"])
def test_a_public_url_browsers_cannot_be_sent_to_is_an_error(settings, url):
    settings.POLICYHUB_PUBLIC_URL = url
    assert _ids() == ["edge.E001"]


def test_a_renewal_window_as_long_as_the_token_would_renew_at_every_page(settings):
    settings.POLICYHUB_BROWSER_TOKEN_TTL_SECONDS = 600
    settings.POLICYHUB_BROWSER_REFRESH_SECONDS = 600
    assert _ids() == ["edge.E003"]
    settings.POLICYHUB_BROWSER_TOKEN_TTL_SECONDS = 3600  # beyond the edge tokens' maximum
    assert _ids() == ["edge.E002"]
