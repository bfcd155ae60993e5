"""make test's preflight names the Debian packages whose server binaries are missing."""

from tests.support import postgres, preflight


def test_missing_binaries_are_named_with_the_install_command(monkeypatch, capsys):
    monkeypatch.setattr(postgres.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    monkeypatch.setattr(preflight.shutil, "which", lambda name: None)
    monkeypatch.setattr(preflight.os.path, "exists", lambda path: False)
    assert preflight.main() == 1
    assert (
        "sudo apt-get update && sudo apt-get install -y "
        "postgresql redis-server haproxy lighttpd lua5.3 lua5.4 lighttpd-modules-lua lua-cjson lua-luaossl "
        "openssh-server"
    ) in capsys.readouterr().err


def test_nothing_is_reported_when_the_binaries_are_there():
    assert preflight.missing_packages() == []
