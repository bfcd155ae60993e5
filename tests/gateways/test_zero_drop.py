"""Zero dropped requests while deploys with key rotation follow one another on live proxies.

A live HAProxy (master-worker) and a live lighttpd (``-D``, pid file), started as README "Deploying"
asks (``tests.support.deploy``), each get a bounded stream of requests on an authenticated route
while each gets 10 deploys back to back, every one rotating its keys. Before each deploy an edge
token is minted with the key signing at that moment; the stream sends every token minted so far,
the oldest included, so tokens signed before any number of rotations keep being presented. Clients
open a new connection per request: lighttpd closes idle keep-alive connections on a graceful
restart (shared/reference/proxies.md §2.6), which a keep-alive client must retry, and this test
counts every failure without retrying anything. Every response must be the upstream's 200.
"""

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from django.db import connection

from apps.credentials.mint import EdgeToken, mint_edge_token
from apps.gateways.choices import DeploymentState, DeploymentTrigger
from apps.gateways.services import deploy_gateway
from apps.identities.models import Identity
from apps.policies.choices import GatewayKind
from tests.factories import IdentityFactory
from tests.support.deploy import ACTOR, Stage, deploy_stage

pytestmark = pytest.mark.slow
DEPLOYS = 10
CLIENTS_PER_GATEWAY = 2
MAX_REQUESTS_PER_CLIENT = 15_000
MAX_SECONDS = 240
PAUSE_SECONDS = 0.003  # between one client's requests: a steady stream, not a load test


@dataclass
class Stream:
    """One gateway's traffic and deploys, shared between its threads."""

    stage: Stage
    identity: Identity
    tokens: list[EdgeToken] = field(default_factory=list)  # appended by the deploy thread, read by clients
    deploys_done: threading.Event = field(default_factory=threading.Event)
    outcomes: Counter = field(default_factory=Counter)  # (token index, status or error name) -> requests
    lock: threading.Lock = field(default_factory=threading.Lock)
    deployments: list = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def mint(self) -> None:
        """A token signed by the key signing now, before the next deploy rotates it away."""
        self.tokens.append(mint_edge_token(identity=self.identity, gateway=self.stage.gateway))

    def deploy_all(self) -> None:
        try:
            for _ in range(DEPLOYS):
                deployment = deploy_gateway(gateway=self.stage.gateway, actor=ACTOR, trigger=DeploymentTrigger.CLI)
                deployment.refresh_from_db()
                self.deployments.append(deployment)
                self.mint()
        except Exception as error:  # reported by the test, with the counts
            self.problems.append(f"deploys stopped: {type(error).__name__}: {error}")
        finally:
            self.deploys_done.set()
            connection.close()

    def send(self, deadline: float) -> None:
        """Requests until the deploys are over (plus one more round of every token), or a bound is hit."""
        sent, tail = 0, None
        while sent < MAX_REQUESTS_PER_CLIENT and time.monotonic() < deadline:
            if tail is None and self.deploys_done.is_set():
                tail = sent + len(self.tokens)
            if tail is not None and sent >= tail:
                return
            index = sent % len(self.tokens)
            outcome = self._request(self.tokens[index].token)
            with self.lock:
                self.outcomes[(index, outcome)] += 1
            sent += 1
            time.sleep(PAUSE_SECONDS)
        self.problems.append(f"a client hit its bound after {sent} requests, before the deploys were over")

    def _request(self, token: str) -> int | str:
        client = http.client.HTTPConnection("127.0.0.1", self.stage.port, timeout=10)
        try:
            client.request(
                "GET", "/private/stream", headers={"Host": self.stage.host, "Authorization": f"Bearer {token}"}
            )
            response = client.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException) as error:
            return type(error).__name__
        finally:
            client.close()

    def by_status(self) -> Counter:
        return Counter(
            {status: sum(n for (_i, s), n in self.outcomes.items() if s == status) for _, status in self.outcomes}
        )

    def report(self) -> str:
        by_status = self.by_status()
        per_token = Counter()
        for (index, _status), n in self.outcomes.items():
            per_token[index] += n
        return (
            f"{self.stage.gateway.kind}: {sum(by_status.values())} requests {dict(by_status)}, "
            f"{len(self.tokens)} tokens (requests per token {min(per_token.values(), default=0)}"
            f"-{max(per_token.values(), default=0)}), {len(self.deployments)} deploys "
            f"{Counter(d.state for d in self.deployments)}; {'; '.join(self.problems) or 'no problems'}"
        )


@pytest.mark.django_db(transaction=True)
def test_no_request_fails_while_ten_deploys_rotate_the_keys(tmp_path):
    identity = IdentityFactory()
    with (
        deploy_stage(GatewayKind.HAPROXY, tmp_path / "haproxy", host="hap.example.test") as haproxy,
        deploy_stage(GatewayKind.LIGHTTPD, tmp_path / "lighttpd", host="lig.example.test") as lighttpd,
    ):
        streams = [Stream(haproxy, identity), Stream(lighttpd, identity)]
        for stream in streams:
            stream.mint()  # the clients' first token, signed before the first rotation
        deadline = time.monotonic() + MAX_SECONDS
        threads = [threading.Thread(target=stream.deploy_all) for stream in streams]
        threads += [
            threading.Thread(target=stream.send, args=(deadline,))
            for stream in streams
            for _ in range(CLIENTS_PER_GATEWAY)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=MAX_SECONDS + 60)

    report = " | ".join(stream.report() for stream in streams)
    print(report)  # the figures, also on success (pytest -s)
    for stream in streams:
        statuses = stream.by_status()
        assert not stream.problems, report
        assert [d.state for d in stream.deployments] == [DeploymentState.LIVE] * DEPLOYS, report
        assert all("now signs edge-tokens" in d.messages[-1]["text"] for d in stream.deployments), report
        assert len({token.kid for token in stream.tokens}) == DEPLOYS + 1, report  # a new key per deploy
        assert {index for index, _status in stream.outcomes} == set(range(DEPLOYS + 1)), report
        failed = sum(n for status, n in statuses.items() if status != 200)
        assert failed == 0 and statuses[200] > 0, report
