"""Rich output for management commands, written through the command's stdout."""

from django.core.management.base import OutputWrapper
from rich.console import Console


class _Stream:
    """Lets rich write through the command's stdout (so call_command(stdout=...) captures it)."""

    def __init__(self, wrapper: OutputWrapper):
        self._wrapper = wrapper

    def write(self, text: str) -> int:
        self._wrapper.write(text, ending="")
        return len(text)

    def flush(self) -> None:
        self._wrapper.flush()

    def isatty(self) -> bool:
        return self._wrapper.isatty()


PIPED_WIDTH = 160  # kids and step texts stay on one line in logs and CI output


def console_for(stdout: OutputWrapper, *, no_color: bool = False) -> Console:
    stream = _Stream(stdout)
    width = None if stream.isatty() else PIPED_WIDTH
    return Console(file=stream, highlight=False, no_color=no_color, soft_wrap=True, width=width)
