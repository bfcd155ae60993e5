"""Reload errors name what is missing: no master socket, no pid file, a process that is gone."""

import socket
import subprocess
import sys

import pytest

from apps.gateways.reload import ReloadFailed, reload_proxy
from apps.gateways.transports import LocalTransport


def test_haproxy_without_its_master_socket(tmp_path):
    with pytest.raises(ReloadFailed, match=r"no HAProxy master socket at .*run/haproxy-master.sock"):
        reload_proxy(kind="haproxy", transport=LocalTransport(tmp_path))


def test_haproxy_master_socket_nobody_listens_on(tmp_path):
    (tmp_path / "run").mkdir()
    path = tmp_path / "run" / "haproxy-master.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))  # bound, never listening: what a crashed master leaves behind
        with pytest.raises(ReloadFailed, match="did not answer"):
            reload_proxy(kind="haproxy", transport=LocalTransport(tmp_path))


def test_lighttpd_without_its_pid_file(tmp_path):
    with pytest.raises(ReloadFailed, match=r"no lighttpd pid file \(cannot read .*run/lighttpd.pid: No such file"):
        reload_proxy(kind="lighttpd", transport=LocalTransport(tmp_path))


@pytest.mark.parametrize("content", ["", "abc", "1", "-5"])
def test_lighttpd_pid_file_without_a_process_id(tmp_path, content):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "lighttpd.pid").write_text(content)
    with pytest.raises(ReloadFailed, match="not a process id"):
        reload_proxy(kind="lighttpd", transport=LocalTransport(tmp_path))


def test_lighttpd_that_is_gone(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert finished.returncode == 0
    (tmp_path / "run").mkdir()
    # a pid that existed a moment ago and has been reaped
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    (tmp_path / "run" / "lighttpd.pid").write_text(str(process.pid))
    with pytest.raises(ReloadFailed, match=f"pid {process.pid} .* is not running"):
        reload_proxy(kind="lighttpd", transport=LocalTransport(tmp_path))
