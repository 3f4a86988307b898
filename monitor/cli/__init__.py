"""The ``monitor`` command line: a thin typer front over the library.

Each command group lives in its own module and registers itself on
:data:`app` through a ``register(app)`` function. Exit codes
(shared/DESIGN.md): 0 success; 1 alerts were raised (``monitor alerts``);
2 usage or input error, with a one-line reason on stderr naming the input.
"""

from __future__ import annotations

import importlib
import sys

import typer

from monitor import __version__
from monitor.errors import InputError

app = typer.Typer(
    name="monitor",
    help="Count railcars and vessels at the North Korea-Russia border from satellite imagery.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_COMMAND_MODULES = ("aoi_cmd", "trace_cmd", "scenes_cmd", "detect_cmd", "store_cmd", "synth_cmd", "run_cmd", "plot_cmd",
                    "evaluate_cmd")


def _version(value: bool):
    if value:
        typer.echo(f"monitor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
):
    """Count railcars and vessels at the North Korea-Russia border from satellite imagery."""


def fail(err: Exception | str, code: int = 2) -> "typer.Exit":
    """Print a one-line error on stderr and return the Exit to raise."""
    msg = " ".join(str(err).split())
    typer.echo(f"error: {msg}", err=True)
    return typer.Exit(code)


for _m in _COMMAND_MODULES:
    try:
        _mod = importlib.import_module(f"monitor.cli.{_m}")
    except ModuleNotFoundError as _e:
        if _e.name != f"monitor.cli.{_m}":
            raise
        continue
    _mod.register(app)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as e:  # typer/click exit
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    except InputError as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
