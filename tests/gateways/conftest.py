"""Fixtures shared by the gateway tests: a gateway deployed to a live proxy, and a real OpenSSH
server standing in for a gateway's remote host."""

import pytest

from apps.policies.choices import GatewayKind
from tests.support.deploy import deploy_stage
from tests.support.sshd import running_sshd


@pytest.fixture(params=[GatewayKind.HAPROXY, GatewayKind.LIGHTTPD])
def stage(request, db, tmp_path):
    with deploy_stage(request.param, tmp_path / "deploy") as staged:
        yield staged


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server
