"""``manage.py run_gateways [GATEWAY…]``: run the proxies of this host's deployable gateways in the
foreground, as README "Deploying" asks a supervisor to, until interrupted (``make demo`` runs it)."""

import signal
import time
from contextlib import ExitStack
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.core.console import console_for
from apps.gateways.live import ProxyDidNotStart
from apps.gateways.management.lookups import gateways_named_or_deployable
from apps.gateways.supervised import (
    LOG_FILE,
    gateway_not_runnable_here,
    proxy_binary,
    proxy_running,
    wait_until_answering,
)

POLL_SECONDS = 0.5


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Start the proxy of each GATEWAY (default: every deployable gateway) on its deploy directory's current "
        "release, as README 'Deploying' describes (HAProxy in master-worker mode with its master socket, lighttpd "
        "in the foreground with its pid file), and keep them running until interrupted; deploys reload them. "
        "For the demo and development: in production, a supervisor (systemd, runit) runs each proxy."
    )

    def add_arguments(self, parser):
        parser.add_argument("gateways", nargs="*", metavar="GATEWAY", help="gateway names; default: all deployable")

    def handle(self, *args, gateways: list[str], **options):
        console = console_for(self.stdout, no_color=options["no_color"])
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
        with ExitStack() as running:
            processes = {}
            for gateway in gateways_named_or_deployable(gateways):
                if reason := gateway_not_runnable_here(gateway):
                    console.print(f"[yellow]{gateway.name}[/]: not started: {reason}")
                    continue
                directory = Path(gateway.deploy_directory)
                process = running.enter_context(proxy_running(gateway.kind, directory))
                try:
                    answer = wait_until_answering(process, directory=directory, listen_address=gateway.listen_address)
                except ProxyDidNotStart as error:
                    raise CommandError(f"{gateway.name}: {proxy_binary(gateway.kind)} did not start: {error}") from None
                console.print(
                    f"[green]{gateway.name}[/]: {proxy_binary(gateway.kind)} on {gateway.listen_address}, "
                    f"deployment {answer.get('deployment')} (log: {directory / LOG_FILE})"
                )
                processes[gateway.name] = (process, directory)
            if not processes:
                raise CommandError("no gateway's proxy could be started here")
            try:
                self._watch(processes)
            except KeyboardInterrupt:
                console.print(f"stopping {', '.join(processes)}")

    @staticmethod
    def _watch(processes: dict) -> None:
        """Until interrupted; a proxy that exits on its own ends the command with its log."""
        while True:
            for name, (process, directory) in processes.items():
                if process.poll() is not None:
                    log = (directory / LOG_FILE).read_text(errors="replace")[-2000:]
                    raise CommandError(f"{name}: the proxy exited with status {process.returncode}:\n{log}")
            time.sleep(POLL_SECONDS)
