"""Rich output for the gateway commands: each pipeline step as it finishes, and a closing table."""

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from apps.gateways.models import Deployment
from apps.gateways.pipeline import STEPS, StepListener


@contextmanager
def step_progress(console: Console, gateway: str) -> Iterator[StepListener]:
    """A progress bar over the pipeline's steps; yields the listener the pipeline reports each step to."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"{gateway}: render", total=len(STEPS))

        def listener(step: dict) -> None:
            mark = "[green]ok[/]" if step["ok"] else "[red]failed[/]"
            progress.console.print(f"  {gateway}  {step['step']:>8}  {step['seconds']:6.2f}s  {mark}  {step['text']}")
            names = [name for name, _state, _step in STEPS]
            following = names.index(step["step"]) + 1
            upcoming = names[following] if following < len(names) else "finishing"
            progress.update(task, advance=1, description=f"{gateway}: {upcoming}")

        yield listener


def deployments_table(deployments: list[Deployment]) -> Table:
    table = Table(title="Deployments", show_lines=False)
    for column in ("gateway", "deployment", "state", "seconds", "outcome"):
        table.add_column(column)
    for deployment in deployments:
        seconds = sum(step["seconds"] for step in deployment.steps)
        style = "green" if deployment.state == "live" else "red"
        outcome = deployment.messages[-1]["text"] if deployment.messages else ""
        table.add_row(
            deployment.gateway.name,
            str(deployment.pk),
            f"[{style}]{deployment.state}[/]",
            f"{seconds:.2f}",
            outcome,
        )
    return table
