"""A throwaway PostgreSQL server started from Debian's binaries on loopback, in a temp directory.

pytest-postgresql runs ``initdb`` as the current user, which PostgreSQL refuses when that user is
root (as on CI); this starts the same kind of server but drops to an unprivileged account first.
Used by the test suite and by the benchmarks.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from apps.gateways.live import free_loopback_port

INSTALL_HINT = "install it with: sudo apt-get install postgresql  (Debian/Ubuntu)"


class PostgresUnavailable(RuntimeError):
    pass


def _find_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    if pg_ctl := shutil.which("pg_ctl"):
        return Path(pg_ctl).resolve().parent
    raise PostgresUnavailable(f"PostgreSQL server binaries (pg_ctl, initdb) not found; {INSTALL_HINT}")


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    datadir: Path
    bindir: Path
    run_as: str | None

    @property
    def url(self) -> str:
        return f"postgres://{self.user}@{self.host}:{self.port}/postgres"

    def _run(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        command = list(args)
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def start_postgres(*, timeout: float = 60.0) -> PostgresServer:
    """initdb + start on 127.0.0.1:<free port>, trust auth, fsync off (tests and benchmarks only)."""
    bindir = _find_bindir()
    workdir = Path(tempfile.mkdtemp(prefix="policyhub-pg-"))
    run_as = None
    if os.geteuid() == 0:
        run_as = "postgres" if _user_exists("postgres") else "nobody"
        account = pwd.getpwnam(run_as)
        os.chown(workdir, account.pw_uid, account.pw_gid)
    server = PostgresServer("127.0.0.1", free_loopback_port(), "policyhub", workdir / "data", bindir, run_as)
    try:
        server._run(
            str(bindir / "initdb"), "-D", str(server.datadir), "-U", server.user, "-A", "trust", "-E", "UTF8",
            "--no-sync", "--locale=C",
        )  # fmt: skip
        options = f"-h {server.host} -p {server.port} -k {workdir} -F -c fsync=off -c full_page_writes=off"
        server._run(
            str(bindir / "pg_ctl"), "-D", str(server.datadir), "-o", options, "-l", str(workdir / "server.log"),
            "-w", "-t", str(int(timeout)), "start",
        )  # fmt: skip
    except subprocess.CalledProcessError as error:
        log = (workdir / "server.log").read_text() if (workdir / "server.log").exists() else ""
        shutil.rmtree(workdir, ignore_errors=True)
        raise PostgresUnavailable(f"PostgreSQL did not start: {error.stderr or error.stdout}\n{log}") from error
    _wait_for_port(server.host, server.port, timeout)
    return server


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise PostgresUnavailable(f"PostgreSQL did not accept connections on {host}:{port} within {timeout}s")
