"""``python -m tests.fakes.okta_org``: a fake Okta org of any size in a process of its own (the
benchmark's; a fake in the measured process would share its CPU and memory).

It prints ``ready <url> <api token>`` once it serves, then reads commands on stdin, one per line:

- ``change <fraction>``: that fraction of the users get a profile edit, and of the groups one member
  each moves to another group (both groups' ``lastMembershipUpdated`` move); answers
  ``changed <users> <groups>``.
- ``stats``: answers one JSON line: requests (total and per family), 429s sent, the most requests
  any family got in one rate-limit window, and the budgets.

It exits when stdin closes.
"""

import argparse
import json
import random
import secrets
import sys
import time

from tests.fakes.okta import FakeOkta


def _org(okta: FakeOkta, *, users: int, groups: int, memberships: int, rng: random.Random) -> None:
    user_ids = okta.add_users(users, login="user{n}@bench.example", everyone=False)
    per_group = max(1, memberships // max(groups, 1))
    for number in range(groups):
        okta.add_group(f"group-{number:05d}", members=rng.sample(user_ids, min(per_group, len(user_ids))))


def _change(okta: FakeOkta, fraction: float, rng: random.Random) -> tuple[int, int]:
    users = rng.sample(sorted(okta.user_ids()), int(len(okta.user_ids()) * fraction))
    for user_id in users:
        okta.update_profile(user_id, title=f"title {rng.randrange(1000)}")
    group_ids = okta.group_ids()
    moved = rng.sample(group_ids, int(len(group_ids) * fraction))
    for group_id in moved:
        members = okta.members(group_id)
        if members:
            target = rng.choice([other for other in group_ids if other != group_id])
            okta.move_member(rng.choice(members), group_id, target)
    return len(users), len(moved)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.okta_org", description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=5_000)
    parser.add_argument("--memberships", type=int, default=500_000)
    parser.add_argument("--budget", action="append", default=[], metavar="FAMILY=N", help="requests per minute")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    budgets = {family: int(count) for family, count in (item.split("=", 1) for item in args.budget)}
    rng = random.Random(args.seed)
    token = secrets.token_urlsafe(24)
    # The org was built a day ago: an incremental read after a first import finds only what changed.
    days_ago = [86_400.0]
    with FakeOkta(seed=False, budgets=budgets, clock=lambda: time.time() - days_ago[0]) as okta:
        okta.add_api_token(token)
        _org(okta, users=args.users, groups=args.groups, memberships=args.memberships, rng=rng)
        days_ago[0] = 0.0
        print(f"ready {okta.url} {token}", flush=True)
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "change":
                users, groups = _change(okta, float(argument), rng)
                print(f"changed {users} {groups}", flush=True)
            elif command == "stats":
                stats = {
                    "requests": okta.requests,
                    "by_family": dict(okta.requests_by_family),
                    "rate_limited": okta.rate_limited,
                    "max_per_window": dict(okta.max_per_window),
                    "budgets": okta.budgets,
                }
                print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
