"""The transport contract, on this host and over a real SSH server: releases staged whole,
``current`` flipped atomically, old releases pruned; commands, sockets, files and signals on the
gateway's host. The ssh transport's "remote" host is this one (sshd on loopback), so each test
checks the result on the filesystem directly."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from apps.core.crypto import Secret
from apps.gateways.live import free_loopback_port
from apps.gateways.rendered import RenderedConfig, RenderedFile
from apps.gateways.transports import (
    LocalTransport,
    NotASocket,
    ProcessGone,
    SshTransport,
    TransportError,
)
from tests.support.sshd import key_pair


def _rendered(text: str, **extra: RenderedFile) -> RenderedConfig:
    return RenderedConfig(
        kind="haproxy",
        main="haproxy.cfg",
        files={
            "haproxy.cfg": RenderedFile(text.encode()),
            "keys/k1.pem": RenderedFile(b"key", mode=0o600),
            **{name.replace("__", "/"): file for name, file in extra.items()},
        },
    )


@pytest.fixture(params=["local", pytest.param("ssh", marks=pytest.mark.slow)])
def connect(request, tmp_path):
    """Open a transport to ``tmp_path/deploy`` of the parametrized kind; closed after the test."""
    opened = []

    def connect(*, keep: int = 5):
        directory = tmp_path / "deploy"
        if request.param == "local":
            transport = LocalTransport(directory, keep=keep)
        else:
            transport = SshTransport(request.getfixturevalue("sshd").settings(directory), keep=keep)
        opened.append(transport)
        return transport

    yield connect
    for transport in opened:
        transport.close()


def _releases(tmp_path) -> list[str]:
    return sorted(path.name for path in (tmp_path / "deploy" / "releases").iterdir())


def test_stage_writes_the_release_whole_with_its_modes_and_leaves_no_partial_copy(connect, tmp_path):
    transport = connect()
    transport.stage("1", _rendered("one", **{"lua__gate.lua": RenderedFile(b"x", mode=0o640)}))
    release = tmp_path / "deploy" / "releases" / "1"
    assert transport.release_path("1") == str(release)
    assert (release / "haproxy.cfg").read_text() == "one"
    assert (release / "keys" / "k1.pem").stat().st_mode & 0o777 == 0o600  # secrets stay private
    assert (release / "haproxy.cfg").stat().st_mode & 0o777 == 0o644
    assert (release / "lua" / "gate.lua").stat().st_mode & 0o777 == 0o640
    assert _releases(tmp_path) == ["1"]
    assert transport.active() is None


def test_activate_flips_current_to_a_relative_link_and_returns_the_previous_release(connect, tmp_path):
    transport = connect()
    transport.stage("1", _rendered("one"))
    transport.stage("2", _rendered("two"))
    assert transport.activate("1") is None
    assert os.readlink(tmp_path / "deploy" / "current") == "releases/1"
    assert transport.activate("2") == "1"
    assert (tmp_path / "deploy" / "current" / "haproxy.cfg").read_text() == "two"
    assert transport.active() == "2"
    assert transport.activate("1") == "2"  # a rollback is one more flip
    assert transport.active() == "1"
    assert [path.name for path in (tmp_path / "deploy").iterdir() if path.name.startswith(".current")] == []


def test_a_failed_upload_leaves_the_live_release_untouched_and_no_partial_copy(connect, tmp_path):
    transport = connect()
    transport.stage("1", _rendered("one"))
    transport.activate("1")
    # "a" is written as a file, then "a/b" needs it as a directory: the write fails halfway, for real.
    broken = _rendered("two", a=RenderedFile(b"file"), a__b=RenderedFile(b"below a file"))
    with pytest.raises((OSError, TransportError)):
        transport.stage("2", broken)
    assert _releases(tmp_path) == ["1"]
    assert transport.active() == "1"
    assert (tmp_path / "deploy" / "current" / "haproxy.cfg").read_text() == "one"


def test_what_an_interrupted_upload_leaves_is_never_a_release(connect, tmp_path):
    transport = connect(keep=2)
    transport.stage("1", _rendered("one"))
    transport.activate("1")
    # A worker killed mid-upload leaves its partial copy behind.
    partial = tmp_path / "deploy" / "releases" / "2.partial"
    partial.mkdir()
    (partial / "haproxy.cfg").write_text("half")
    with pytest.raises(TransportError, match="never staged"):
        transport.activate("2")
    for release in ("3", "4"):
        transport.stage(release, _rendered(release))
    transport.activate("4")
    assert _releases(tmp_path) == ["1", "2.partial", "4"]  # pruning counts releases, not partial copies
    transport.stage("2", _rendered("two"))  # the retried stage replaces the partial copy
    assert _releases(tmp_path) == ["1", "2", "4"]
    assert (tmp_path / "deploy" / "releases" / "2" / "haproxy.cfg").read_text() == "two"
    assert transport.active() == "4"


def test_restaging_a_release_replaces_it_but_the_live_release_is_never_rewritten(connect, tmp_path):
    transport = connect()
    transport.stage("1", _rendered("first try"))
    transport.stage("1", _rendered("second try"))
    assert (tmp_path / "deploy" / "releases" / "1" / "haproxy.cfg").read_text() == "second try"
    transport.activate("1")
    with pytest.raises(TransportError, match="release 1 is live"):
        transport.stage("1", _rendered("third try"))
    with pytest.raises(TransportError, match="release 1 is live"):
        transport.discard("1")
    assert (tmp_path / "deploy" / "releases" / "1" / "haproxy.cfg").read_text() == "second try"


def test_discard_removes_a_staged_release_and_its_partial_copy(connect, tmp_path):
    transport = connect()
    transport.stage("1", _rendered("one"))
    (tmp_path / "deploy" / "releases" / "1.partial").mkdir()
    transport.discard("1")
    transport.discard("2")  # never staged: nothing to do
    assert _releases(tmp_path) == []


@pytest.mark.parametrize("name", ["..", "../x", "a/b", "", ".hidden", "UPPER", "1.partial", "a" * 64, "x\n"])
def test_release_names_that_are_not_plain_slugs_are_refused(connect, tmp_path, name):
    transport = connect()
    with pytest.raises(TransportError, match="not a plain slug"):
        transport.stage(name, _rendered("x"))
    with pytest.raises(TransportError, match="not a plain slug"):
        transport.activate(name)
    with pytest.raises(TransportError, match="not a plain slug"):
        transport.discard(name)
    assert not (tmp_path / "deploy" / "current").exists()


def test_activating_a_release_never_staged_is_refused(connect):
    with pytest.raises(TransportError, match="never staged"):
        connect().activate("7")


def test_current_that_is_not_a_release_link_is_reported(connect, tmp_path):
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "current").symlink_to("/etc")
    with pytest.raises(TransportError, match="not at releases/<release>"):
        connect().active()


def test_activation_prunes_to_the_newest_releases_keeping_the_live_one_and_the_one_it_replaced(connect, tmp_path):
    transport = connect(keep=3)
    transport.stage("1", _rendered("one"))
    transport.activate("1")
    for release in ("2", "3", "4", "5"):
        transport.stage(release, _rendered(release))
    transport.stage("6", _rendered("six"))
    assert transport.activate("6") == "1"
    # live 6, rollback target 1, and the newest other one (5)
    assert _releases(tmp_path) == ["1", "5", "6"]


def test_file_hashes_name_each_file_of_a_release_relative_to_it(connect):
    transport = connect()
    rendered = _rendered("one")
    transport.stage("1", rendered)
    expected = {name: hashlib.sha256(file.content).hexdigest() for name, file in rendered.files.items()}
    assert (
        transport.file_hashes("1")
        == expected
        == {"haproxy.cfg": expected["haproxy.cfg"], "keys/k1.pem": expected["keys/k1.pem"]}
    )
    with pytest.raises(TransportError, match="release 2 is not on the gateway's host"):
        transport.file_hashes("2")


# Commands, sockets, files and signals on the gateway's host ----------------------------------


def test_a_command_runs_in_its_directory_and_its_status_and_output_come_back(connect, tmp_path):
    transport = connect()
    result = transport.run(["sh", "-c", "pwd; echo 'to stderr' >&2; exit 3"], cwd=str(tmp_path), timeout=10)
    assert (result.returncode, result.stdout, result.stderr) == (3, f"{tmp_path}\n", "to stderr\n")
    assert transport.run(["haproxy", "-v"], timeout=10).stdout.startswith("HAProxy version")  # /usr/sbin is found
    assert transport.run(["policyhub-no-such-program"], timeout=10).returncode == 127


def test_a_command_that_outlives_its_timeout_is_an_error(connect):
    started = time.monotonic()
    with pytest.raises(TransportError, match="did not finish within"):
        connect().run(["sleep", "30"], timeout=1)
    assert time.monotonic() - started < 10


def test_a_unix_socket_request_half_closes_and_reads_the_answer_to_the_end(connect, tmp_path):
    path = tmp_path / "master.sock"
    received = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen()

        def answer_once():  # like the HAProxy master: read until the client half-closes, answer, close
            connection, _ = server.accept()
            with connection:
                data = b""
                while chunk := connection.recv(4096):
                    data += chunk
                received.append(data)
                connection.sendall(b"answer to " + data * 1000)

        thread = threading.Thread(target=answer_once)
        thread.start()
        answer = connect().unix_request(str(path), b"show proc\n", timeout=10)
        thread.join(timeout=10)
    assert received == [b"show proc\n"]
    assert answer == b"answer to " + b"show proc\n" * 1000
    with pytest.raises(NotASocket, match=f"no socket at {tmp_path}/nothing.sock"):
        connect().unix_request(str(tmp_path / "nothing.sock"), b"x", timeout=5)


def test_a_shared_file_is_replaced_whole_with_its_mode_beside_the_releases(connect, tmp_path):
    transport = connect()
    transport.stage("1", _rendered("one"))
    transport.activate("1")
    path = transport.shared_file_replace("revoked.map", b"okta:a 1\n")
    assert path == str(tmp_path / "deploy" / "shared" / "revoked.map") == transport.shared_path("revoked.map")
    before = os.stat(path).st_ino
    assert transport.shared_file_replace("revoked.map", b"okta:b 2\n", mode=0o600) == path
    shared = tmp_path / "deploy" / "shared"
    assert (shared / "revoked.map").read_bytes() == b"okta:b 2\n"
    assert (shared / "revoked.map").stat().st_mode & 0o777 == 0o600
    assert os.stat(path).st_ino != before  # renamed into place: a reader never sees half a file
    assert [entry.name for entry in shared.iterdir()] == ["revoked.map"]  # no partial copy left
    assert set(transport.file_hashes("1")) == {"haproxy.cfg", "keys/k1.pem"}  # the release is untouched


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden"])
def test_shared_file_names_must_be_plain(connect, name):
    with pytest.raises(TransportError, match="not a plain file name"):
        connect().shared_file_replace(name, b"x")


def test_read_file_returns_the_bytes_or_says_what_is_missing(connect, tmp_path):
    (tmp_path / "lighttpd.pid").write_bytes(b"1234\n")
    transport = connect()
    assert transport.read_file(str(tmp_path / "lighttpd.pid")) == b"1234\n"
    with pytest.raises(TransportError, match=f"cannot read {tmp_path}/missing.pid: No such file"):
        transport.read_file(str(tmp_path / "missing.pid"))


def test_a_signal_reaches_the_process_and_a_gone_process_is_named(connect, tmp_path):
    marker = tmp_path / "got-usr1"
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import pathlib, signal, sys, time\n"
         f"signal.signal(signal.SIGUSR1, lambda *a: (pathlib.Path({str(marker)!r}).write_text('yes'), sys.exit(0)))\n"
         f"pathlib.Path({str(tmp_path / 'ready')!r}).write_text('1')\n"
         "time.sleep(30)\n"],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        transport = connect()
        transport.send_signal(child.pid, signal.SIGUSR1)
        assert child.wait(timeout=10) == 0
        assert marker.read_text() == "yes"
        with pytest.raises(ProcessGone, match=f"no process {child.pid}"):
            transport.send_signal(child.pid, signal.SIGUSR1)
    finally:
        child.kill()
        child.wait()


# SSH only: who may connect -------------------------------------------------------------------


@pytest.mark.slow
def test_a_host_presenting_another_key_is_refused_before_anything_is_written(sshd, tmp_path):
    transport = SshTransport(sshd.settings(tmp_path / "deploy", host_key=key_pair().public_line))
    try:
        with pytest.raises(TransportError) as refused:
            transport.stage("1", _rendered("one"))
    finally:
        transport.close()
    message = str(refused.value)
    assert f"127.0.0.1:{sshd.port}" in message
    assert "host key it presented is not the one stored for this gateway" in message
    assert "refused" in message
    assert not (tmp_path / "deploy").exists()


@pytest.mark.slow
def test_a_client_key_the_host_does_not_accept_is_refused_without_showing_any_key(sshd, tmp_path):
    stranger = key_pair()
    transport = SshTransport(sshd.settings(tmp_path / "deploy", private_key=Secret(stranger.private_openssh)))
    try:
        with pytest.raises(TransportError) as refused:
            transport.active()
    finally:
        transport.close()
    message = str(refused.value)
    assert f"ssh {sshd.username}@127.0.0.1:{sshd.port}" in message
    assert "refused the gateway's client key" in message
    for line in stranger.private_openssh.splitlines()[1:-1]:
        assert line not in message and line not in repr(refused.value)
    assert stranger.private_openssh not in repr(transport.settings)


@pytest.mark.slow
def test_a_host_nobody_listens_on_is_named(tmp_path, sshd):
    port = free_loopback_port()
    transport = SshTransport(sshd.settings(tmp_path, port=port))
    try:
        with pytest.raises(TransportError, match=f"127.0.0.1:{port}: cannot connect"):
            transport.read_file("/etc/hostname")
    finally:
        transport.close()
