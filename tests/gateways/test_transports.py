"""LocalTransport: releases staged whole, ``current`` flipped atomically, old releases pruned."""

import os

import pytest

from apps.gateways.rendered import RenderedConfig, RenderedFile
from apps.gateways.transports import LocalTransport, TransportError


def _rendered(text: str) -> RenderedConfig:
    return RenderedConfig(
        kind="haproxy",
        main="haproxy.cfg",
        files={"haproxy.cfg": RenderedFile(text.encode()), "keys/k1.pem": RenderedFile(b"key", mode=0o600)},
    )


def test_stage_writes_the_release_whole_and_leaves_no_partial_copy(tmp_path):
    transport = LocalTransport(tmp_path)
    transport.stage("1", _rendered("one"))
    release = tmp_path / "releases" / "1"
    assert (release / "haproxy.cfg").read_text() == "one"
    assert (release / "keys" / "k1.pem").stat().st_mode & 0o777 == 0o600
    assert (release / "haproxy.cfg").stat().st_mode & 0o777 == 0o644
    assert sorted(path.name for path in (tmp_path / "releases").iterdir()) == ["1"]
    assert transport.active() is None


def test_activate_flips_current_to_a_relative_link_and_returns_the_previous_release(tmp_path):
    transport = LocalTransport(tmp_path)
    transport.stage("1", _rendered("one"))
    transport.stage("2", _rendered("two"))
    assert transport.activate("1") is None
    assert os.readlink(tmp_path / "current") == "releases/1"
    assert transport.activate("2") == "1"
    assert (tmp_path / "current" / "haproxy.cfg").read_text() == "two"
    assert transport.active() == "2"
    assert transport.activate("1") == "2"  # a rollback is one more flip
    assert transport.active() == "1"
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".current")] == []


def test_a_failed_stage_leaves_neither_the_release_nor_a_partial_copy(tmp_path, monkeypatch):
    transport = LocalTransport(tmp_path)

    def broken_write(self, directory):
        (directory / "half-written").write_text("x")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RenderedConfig, "write_to", broken_write)
    with pytest.raises(OSError, match="No space left"):
        transport.stage("1", _rendered("one"))
    assert list((tmp_path / "releases").iterdir()) == []


def test_restaging_a_release_replaces_it_but_the_live_release_is_never_rewritten(tmp_path):
    transport = LocalTransport(tmp_path)
    transport.stage("1", _rendered("first try"))
    transport.stage("1", _rendered("second try"))
    assert (tmp_path / "releases" / "1" / "haproxy.cfg").read_text() == "second try"
    transport.activate("1")
    with pytest.raises(TransportError, match="release 1 is live"):
        transport.stage("1", _rendered("third try"))
    with pytest.raises(TransportError, match="release 1 is live"):
        transport.discard("1")
    assert (tmp_path / "releases" / "1" / "haproxy.cfg").read_text() == "second try"


def test_discard_removes_a_staged_release(tmp_path):
    transport = LocalTransport(tmp_path)
    transport.stage("1", _rendered("one"))
    transport.discard("1")
    transport.discard("2")  # never staged: nothing to do
    assert list((tmp_path / "releases").iterdir()) == []


@pytest.mark.parametrize("name", ["..", "../x", "a/b", "", ".hidden", "UPPER", "1.partial", "a" * 64, "x\n"])
def test_release_names_that_are_not_plain_slugs_are_refused(tmp_path, name):
    transport = LocalTransport(tmp_path)
    with pytest.raises(TransportError, match="not a plain slug"):
        transport.stage(name, _rendered("x"))
    with pytest.raises(TransportError, match="not a plain slug"):
        transport.activate(name)
    with pytest.raises(TransportError, match="not a plain slug"):
        transport.discard(name)
    assert not (tmp_path / "current").exists()


def test_activating_a_release_never_staged_is_refused(tmp_path):
    with pytest.raises(TransportError, match="never staged"):
        LocalTransport(tmp_path).activate("7")


def test_current_that_is_not_a_release_link_is_reported(tmp_path):
    (tmp_path / "current").symlink_to("/etc")
    with pytest.raises(TransportError, match="not at releases/<release>"):
        LocalTransport(tmp_path).active()


def test_activation_prunes_to_the_newest_releases_keeping_the_live_one_and_the_one_it_replaced(tmp_path):
    transport = LocalTransport(tmp_path, keep=3)
    transport.stage("1", _rendered("one"))
    transport.activate("1")
    for release in ("2", "3", "4", "5"):
        transport.stage(release, _rendered(release))
    transport.stage("6", _rendered("six"))
    assert transport.activate("6") == "1"
    # live 6, rollback target 1, and the newest other one (5)
    assert sorted(path.name for path in (tmp_path / "releases").iterdir()) == ["1", "5", "6"]
