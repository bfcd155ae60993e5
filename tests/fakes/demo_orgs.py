"""The demo's identity providers: a fake Okta and a fake Space serving the demo story
(``apps/core/demo.py``: its recorded users, groups and profiles and what it invents around them),
so ``sync_identities`` has organizations to import while ``make demo`` runs.

    python -m tests.fakes.demo_orgs [--okta 127.0.0.1:8701] [--space 127.0.0.1:8702]

serves until interrupted; ``demo_orgs()`` gives both fakes to a test.
"""

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress

import django
from django.apps import apps

if not apps.ready:  # run as a program (make demo), not imported by the tests: the demo's settings
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "policyhub.settings")
    os.environ.setdefault("DEBUG", "1")
    django.setup()

# below the setup: these import models
from apps.core import demo
from tests.fakes.okta import FakeOkta
from tests.fakes.space import FakeSpace


def okta_demo_org(okta: FakeOkta) -> None:
    okta.add_api_token(demo.DEMO_OKTA_TOKEN)
    users = [
        user for page in (*demo.OKTA_USER_PAGES, *demo.OKTA_MEMBER_PAGES.values()) for user in demo.demo_recording(page)
    ]
    for user in users:
        okta.add_recorded_user(user)
    login_to_id = {user["profile"]["login"]: user["id"] for user in users}
    for group in (group for page in demo.OKTA_GROUP_PAGES for group in demo.demo_recording(page)):
        okta.add_recorded_group(group)
        name = group["profile"]["name"]
        if group["type"] == "BUILT_IN":  # Everyone
            okta.add_members(group["id"], sorted(okta.user_ids()), touch=False)
        elif name in demo.OKTA_MEMBER_PAGES:
            okta.add_members(
                group["id"], [user["id"] for user in demo.demo_recording(demo.OKTA_MEMBER_PAGES[name])], touch=False
            )
    for group in demo.OKTA_INVENTED_GROUPS:
        name = group["profile"]["name"]
        logins = demo.OKTA_INVENTED_MEMBERSHIPS.get(name, ())
        okta.add_group(name, id=group["id"], description=group["profile"]["description"],
                       members=[login_to_id[login] for login in logins])  # fmt: skip
    for name, logins in demo.OKTA_INVENTED_MEMBERSHIPS.items():
        if name not in {group["profile"]["name"] for group in demo.OKTA_INVENTED_GROUPS}:
            okta.add_members(okta.group_id(name), [login_to_id[login] for login in logins], touch=False)


def space_demo_org(space: FakeSpace) -> None:
    people = space.seed_from_recordings()
    team = demo.SPACE_INVENTED_TEAM
    space.add_team(team["name"], id=team["id"], description="Publish to the Maven feed")
    for username in team["members"]:
        space.add_membership(people[username], team["id"])


@contextmanager
def demo_orgs(*, okta_port: int = 0, space_port: int = 0) -> Iterator[tuple[FakeOkta, FakeSpace]]:
    with ExitStack() as stack:
        okta = stack.enter_context(FakeOkta(seed=False, port=okta_port))
        space = stack.enter_context(FakeSpace(permanent_token=demo.DEMO_SPACE_TOKEN, port=space_port))
        okta_demo_org(okta)
        space_demo_org(space)
        yield okta, space


def _port(address: str) -> int:
    host, _, port = address.rpartition(":")
    if host not in {"127.0.0.1", "localhost"}:
        raise SystemExit(f"{address}: the demo organizations listen on loopback only")
    return int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.demo_orgs", description=__doc__.split("\n")[0])
    parser.add_argument("--okta", default="127.0.0.1:8701", help="address of the fake Okta")
    parser.add_argument("--space", default="127.0.0.1:8702", help="address of the fake Space")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with demo_orgs(okta_port=_port(args.okta), space_port=_port(args.space)) as (okta, space):
        print(f"demo Okta at {okta.url}, demo Space at {space.url}", flush=True)
        with suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
