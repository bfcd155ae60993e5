"""The proxy benchmark's machinery: CPU pinning, the fast upstream, the bare (policy-free) proxy
configs, wrk runs with CPU accounting, and the request-by-request sanity pass."""

import http.client
import json
import os
import resource
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from apps.gateways.live import free_loopback_port, running_proxy
from apps.gateways.rendered import RenderedConfig, RenderedFile

WRK_SCRIPT = Path(__file__).with_name("proxy_rotate.lua")
WRK_DEBIAN_PACKAGE = "wrk"
RESULT_MARKER = "policyhub-result "
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NICENESS = -10  # of the proxies, the upstream and wrk
_TIMEOUTS = "    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n"


class LoadError(RuntimeError):
    """The load could not be generated or measured; the message says what to fix."""


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise LoadError(f"wrk is not installed; on Debian: apt-get install {WRK_DEBIAN_PACKAGE}")
    return path


# CPUs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuPlan:
    """The proxy under test gets a core of its own; wrk and the upstream share the other."""

    proxy: frozenset[int]
    load: frozenset[int]

    @classmethod
    def for_this_machine(cls) -> "CpuPlan":
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(frozenset(cpus), frozenset(cpus))
        return cls(frozenset(cpus[:1]), frozenset(cpus[1:2]))

    @property
    def pinned(self) -> bool:
        return self.proxy != self.load

    def describe(self) -> str:
        priority = "at niceness " + str(NICENESS) if os.geteuid() == 0 else "at normal priority (not root)"
        if not self.pinned:
            shared = "one CPU" if len(self.proxy) == 1 else f"{len(self.proxy)} CPUs"
            return f"{shared}: wrk, proxy and upstream share them, {priority}"
        return f"proxy on CPU {min(self.proxy)}; wrk and the upstream on CPU {min(self.load)}; {priority}"


@contextmanager
def on_cpus(cpus: frozenset[int]) -> Iterator[None]:
    """Processes started inside inherit this thread's CPU mask (HAProxy then starts one thread per
    CPU it may use, since its configs set no ``nbthread``) and its scheduling priority: ahead of
    other work on the machine, which would otherwise take half of whichever core it lands on."""
    saved_cpus, saved_niceness = os.sched_getaffinity(0), os.getpriority(os.PRIO_PROCESS, 0)
    os.sched_setaffinity(0, cpus)
    with suppress(PermissionError):  # raising the priority needs root (CAP_SYS_NICE)
        os.setpriority(os.PRIO_PROCESS, 0, NICENESS)
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved_cpus)
        os.setpriority(os.PRIO_PROCESS, 0, saved_niceness)


# Proxies ---------------------------------------------------------------------------------------


def _child_in(directory: Path) -> int:
    """The pid of our child process working in ``directory`` (running_proxy starts it there)."""
    wanted = directory.resolve()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            if parent == os.getpid() and Path(os.readlink(entry / "cwd")) == wanted:
                return int(entry.name)
        except (OSError, ValueError):
            continue  # exited meanwhile, or not ours to read
    raise LoadError(f"no child process of ours runs in {directory}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a running process, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True)
class Proxy:
    label: str
    port: int
    pid: int


def start_proxy(stack: ExitStack, label: str, rendered: RenderedConfig, port: int, cpus: frozenset[int]) -> Proxy:
    with on_cpus(cpus):
        directory = stack.enter_context(running_proxy(rendered, port=port))
    return Proxy(label, port, _child_in(directory))


def upstream_config(port: int) -> RenderedConfig:
    """A one-thread HAProxy that answers every request itself: far faster than any proxy in front."""
    config = (
        f"global\n    nbthread 1\n\ndefaults\n    mode http\n{_TIMEOUTS}\n"
        f"frontend upstream\n    bind 127.0.0.1:{port}\n"
        "    http-request return status 200 content-type text/plain string ok\n"
    )
    return RenderedConfig(kind="haproxy", main="upstream.cfg", files={"upstream.cfg": RenderedFile(config.encode())})


def bare_config(kind: str, port: int, upstream_port: int) -> RenderedConfig:
    """The hand-written baseline: the proxy forwarding everything to the upstream, no policy."""
    if kind == "haproxy":
        config = (
            f"defaults\n    mode http\n{_TIMEOUTS}\n"
            f"frontend bare\n    bind 127.0.0.1:{port}\n    default_backend upstream\n\n"
            f"backend upstream\n    server upstream 127.0.0.1:{upstream_port}\n"
        )
        return RenderedConfig(kind=kind, main="bare.cfg", files={"bare.cfg": RenderedFile(config.encode())})
    config = (
        'server.modules = ("mod_proxy")\n'
        f'server.bind = "127.0.0.1"\nserver.port = {port}\n'
        'server.document-root = var.CWD + "/no-static-files"\n'
        f'proxy.server = ("" => (("host" => "127.0.0.1", "port" => {upstream_port})))\n'
    )
    return RenderedConfig(kind=kind, main="bare.conf", files={"bare.conf": RenderedFile(config.encode())})


def start_upstream(stack: ExitStack, cpus: frozenset[int]) -> Proxy:
    port = free_loopback_port()
    return start_proxy(stack, "upstream", upstream_config(port), port, cpus)


# Load ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkRun:
    requests: int
    seconds: float
    status_errors: int  # responses >= 400
    socket_errors: int
    p50_ms: float
    p99_ms: float
    # CPU time over the run's wall time (1.0: one core busy all along)
    proxy_cpu: float  # the proxy under test (0 when wrk hits the upstream directly)
    load_cpu: float  # wrk and the upstream together
    other_cpu: float  # everything else on the machine (other work, unattributed kernel time)

    proxy_us: float  # the proxy's CPU time per request, in microseconds: the cost of one request

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


@dataclass(frozen=True)
class WrkSettings:
    connections: int
    seconds: int


def machine_busy_seconds() -> float:
    """CPU time all CPUs have spent on anything but idling since boot (/proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(target: Proxy, upstream: Proxy | None, requests_file: Path, settings: WrkSettings, cpus) -> WrkRun:
    """One bounded wrk run against ``target``, through to ``upstream`` (None: target is the upstream)."""
    command = [
        wrk_binary(), "-t1", f"-c{settings.connections}", f"-d{settings.seconds}s", "--timeout", "5s",
        "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{target.port}/", "--", str(requests_file),
    ]  # fmt: skip
    proxies = [proxy for proxy in (target, upstream) if proxy]
    before = [cpu_seconds(proxy.pid) for proxy in proxies], _children_cpu_seconds(), machine_busy_seconds()
    started = time.monotonic()
    with on_cpus(cpus):
        completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    wall = time.monotonic() - started  # CPU shares are over wrk's whole life, start-up included
    used = [cpu_seconds(proxy.pid) - start for proxy, start in zip(proxies, before[0], strict=True)]
    wrk_cpu = _children_cpu_seconds() - before[1]  # wrk is the only child reaped meanwhile
    machine = machine_busy_seconds() - before[2]
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if completed.returncode != 0 or not lines:
        raise LoadError(f"wrk failed (exit {completed.returncode}): {completed.stderr.strip() or completed.stdout}")
    result = json.loads(lines[-1].removeprefix(RESULT_MARKER))
    seconds = result["duration_us"] / 1e6
    proxy_cpu = used[0] if upstream else 0.0
    load_cpu = wrk_cpu + used[-1]
    return WrkRun(
        requests=result["requests"],
        seconds=seconds,
        status_errors=result["status_errors"],
        socket_errors=sum(result[f"{kind}_errors"] for kind in ("connect", "read", "write")) + result["timeouts"],
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        proxy_cpu=proxy_cpu / wall,
        load_cpu=load_cpu / wall,
        other_cpu=max(0.0, machine - proxy_cpu - load_cpu) / wall,
        proxy_us=proxy_cpu / max(1, result["requests"]) * 1e6,
    )


@dataclass(frozen=True)
class Measured:
    """The runs of one configuration, reported by their medians."""

    label: str
    runs: tuple[WrkRun, ...]

    def median(self, field: str) -> float:
        return statistics.median(getattr(run, field) for run in self.runs)

    @property
    def rate(self) -> float:
        return self.median("rate")

    @property
    def errors(self) -> int:
        return sum(run.status_errors + run.socket_errors for run in self.runs)


# Sanity ----------------------------------------------------------------------------------------


def statuses(port: int, requests: list[tuple[str, str, str, str | None]]) -> list[int]:
    """The status of each (method, host, path, token) request, sent one by one on a keep-alive
    connection: exact statuses for every request wrk rotates through, which wrk alone cannot give."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    found = []
    try:
        for method, host, path, token in requests:
            headers = {"Host": host} | ({"Authorization": f"Bearer {token}"} if token else {})
            connection.request(method, path, headers=headers)
            response = connection.getresponse()
            response.read()
            found.append(response.status)
            if response.will_close:
                connection.close()
    finally:
        connection.close()
    return found
