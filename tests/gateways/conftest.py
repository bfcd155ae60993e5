"""Fixtures shared by the gateway tests: a real OpenSSH server standing in for a gateway's remote
host (a gateway deployed to a live proxy, ``stage``, is the suite's: tests/conftest.py)."""

import pytest

from tests.support.sshd import running_sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server
