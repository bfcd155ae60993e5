"""Stand-ins for the tools behind the gateways (Backstage, Airflow, the artifact store, the package
feed): each answers every request with a page naming the tool, the path asked for and the identity
the gateway forwarded (its ``X-Policyhub-*`` headers), so a browser test or a demo visitor sees who
the tool was told they are.

    python -m tests.fakes.tools --tool backstage=127.0.0.1:7007 --tool airflow=127.0.0.1:8080 …

serves until interrupted; ``tool_stand_in(name)`` gives one to a test.
"""

import argparse
import html
import os
import signal
import threading
from contextlib import AbstractContextManager, ExitStack, suppress

import django
from django.apps import apps

if not apps.ready:  # run as a program (make demo), not imported by the tests
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "policyhub.settings")
    os.environ.setdefault("DEBUG", "1")
    django.setup()

from apps.gateways.echo import AnsweringHandler, serving
from apps.gateways.renderers.base import SIGN_OUT_PATH

TITLES = {"backstage": "Backstage", "airflow": "Airflow", "artifacts": "Artifacts", "packages": "Package feed"}
IDENTITY_PREFIX = "x-policyhub-"
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} (stand-in)</title>
<style>body{{font:15px system-ui,sans-serif;margin:2rem auto;max-width:46rem;color:#1d2733}}
table{{border-collapse:collapse}}td,th{{border:1px solid #c8d0da;padding:.3rem .6rem;text-align:left}}
td:first-child{{white-space:nowrap}}td{{word-break:break-all}}
.note{{color:#5b6775}}</style></head>
<body><h1>{title}</h1>
<p class="note">A stand-in for {title} behind a policyhub gateway: you asked for <code>{method} {path}</code>.</p>
<p id="signed-in-as">{greeting}</p>
<table id="identity"><tr><th>Header the gateway sent</th><th>Value</th></tr>{rows}</table>
<p><a href="{sign_out}">Sign out</a></p>
</body></html>
"""


def _page(title: str, method: str, path: str, headers: dict[str, str]) -> bytes:
    identity = {name: value for name, value in sorted(headers.items()) if name.startswith(IDENTITY_PREFIX)}
    who = next(
        (identity[f"{IDENTITY_PREFIX}{field}"] for field in ("display-name", "email", "username", "subject")
         if identity.get(f"{IDENTITY_PREFIX}{field}")),
        "",
    )  # fmt: skip
    greeting = f"Signed in as <strong>{html.escape(who)}</strong>" if who else "No identity was forwarded."
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(value[:200])}</td></tr>" for name, value in identity.items()
    )
    return PAGE.format(
        title=html.escape(title), method=html.escape(method), path=html.escape(path), greeting=greeting,
        rows=rows, sign_out=SIGN_OUT_PATH,
    ).encode()  # fmt: skip


def _handler(title: str) -> type[AnsweringHandler]:
    class StandIn(AnsweringHandler):
        content_type = "text/html; charset=utf-8"

        def answer(self, headers: dict[str, str]) -> bytes:
            return _page(title, self.command, self.path, headers)

    return StandIn


def tool_stand_in(name: str, address: tuple[str, int] = ("127.0.0.1", 0)) -> AbstractContextManager[str]:
    """The stand-in for tool ``name`` (one of ``TITLES``) served in a thread; yields its http:// URL."""
    return serving(_handler(TITLES[name]), address)


def _tool(text: str) -> tuple[str, tuple[str, int]]:
    name, _, address = text.partition("=")
    host, _, port = address.rpartition(":")
    if name not in TITLES or host != "127.0.0.1" or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected <{'|'.join(TITLES)}>=127.0.0.1:<port>")
    return name, (host, int(port))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tool", action="append", type=_tool, required=True, help="name=127.0.0.1:port")
    arguments = parser.parse_args(argv)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with ExitStack() as stack:
        for name, address in arguments.tool:
            stack.enter_context(tool_stand_in(name, address))
            print(f"{TITLES[name]} stand-in on http://{address[0]}:{address[1]}", flush=True)
        with suppress(KeyboardInterrupt):
            stopped.wait()


if __name__ == "__main__":
    main()
