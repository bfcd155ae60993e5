"""Rich output for ``sync_identities``: a progress bar per source while it is read, and a closing table."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from apps.identities.connectors.base import Progress as FetchProgress
from apps.identities.connectors.base import ProgressListener
from apps.identities.models import SyncRun


@contextmanager
def sync_progress(console: Console, source: str, expected: int | None) -> Iterator[ProgressListener]:
    """A bar over the records read; ``expected`` (the last run's count, if any) gives it a total and
    an ETA. Yields the listener the connector reports each page to."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} records, {task.fields[pages]:,} pages, {task.fields[rate]:,.0f}/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"{source}: connecting", total=expected, pages=0, rate=0.0)

        def listener(fetched: FetchProgress) -> None:
            rate = fetched.records / max(time.monotonic() - started, 1e-6)
            total = max(expected, fetched.records) if expected else None
            progress.update(
                task,
                completed=fetched.records,
                total=total,
                description=f"{source}: {fetched.stage}",
                pages=fetched.pages,
                rate=rate,
            )

        yield listener


def sync_runs_table(runs: list[SyncRun]) -> Table:
    table = Table(title="Identity syncs")
    for column in ("source", "run", "mode", "state", "created", "updated", "deactivated", "unchanged",
                   "memberships", "requests", "seconds", "outcome"):  # fmt: skip
        table.add_column(column)
    for run in runs:
        style = "green" if run.state == "succeeded" else "red"
        counts = run.counts
        memberships = f"+{counts.get('memberships_added', 0)} -{counts.get('memberships_removed', 0)}"
        table.add_row(
            run.source.name, str(run.pk), run.mode, f"[{style}]{run.state}[/]",
            *(str(n) for n in (run.created, run.updated, run.deactivated, run.unchanged)),
            memberships, str(run.progress.get("requests", "-")), f"{sum(run.timings.values()):.2f}",
            run.messages[-1]["text"] if run.messages else "",
        )  # fmt: skip
    return table
