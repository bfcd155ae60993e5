"""Start-up checks of the browser sign-in settings: a mistake here would send every browser into a
redirect loop or to the wrong place, so it stops the server instead."""

from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, register

from apps.credentials.mint import checked_lifetime


@register()
def browser_sign_in_settings(app_configs, **kwargs) -> list[Error]:
    problems = []
    public_url = settings.POLICYHUB_PUBLIC_URL
    parts = urlsplit(public_url)
    if public_url and (parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment):
        problems.append(
            (
                f"POLICYHUB_PUBLIC_URL {public_url!r} must be an http(s) URL such as https://policyhub.example.com",
                "E001",
            )
        )
    ttl, refresh = settings.POLICYHUB_BROWSER_TOKEN_TTL_SECONDS, settings.POLICYHUB_BROWSER_REFRESH_SECONDS
    try:  # the bounds every edge token's lifetime is minted within
        checked_lifetime(
            timedelta(seconds=ttl), default_seconds=ttl, maximum_seconds=settings.POLICYHUB_EDGE_TOKEN_MAX_TTL_SECONDS,
            refused=ValueError, what="POLICYHUB_BROWSER_TOKEN_TTL_SECONDS: the browser token's",
        )  # fmt: skip
    except ValueError as error:
        problems.append((str(error), "E002"))
    if not 0 <= refresh < ttl:  # a token younger than the renewal window would be renewed at every page
        problems.append(
            (
                f"POLICYHUB_BROWSER_REFRESH_SECONDS ({refresh}) must be below the browser token's lifetime ({ttl})",
                "E003",
            )
        )
    return [Error(message, id=f"edge.{code}") for message, code in problems]
