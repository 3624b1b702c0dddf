"""The ``slimedge`` command line: a thin typer app over the library.

Every command turns a library error (bad file, bad option, bad data) into one red line on stderr and
a non-zero exit, never a traceback.
"""
from __future__ import annotations

import functools
import json
import sys
from typing import Callable

import typer
from rich.console import Console
from rich.table import Table

from . import __version__, variants

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="SLIM LSTM variants: train, export to ONNX/TFLite, run and profile.")
console = Console()
err_console = Console(stderr=True)

# Errors a user can cause; anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, PermissionError,
                                                IsADirectoryError, KeyError, ImportError)


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def user_errors(fn: Callable) -> Callable:
    """Decorator: a user error becomes one message and exit code 2."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except USER_ERRORS as e:
            fail(str(e) if not isinstance(e, KeyError) else str(e.args[0]))
    return wrapper


def _version(value: bool) -> None:
    if value:
        console.print(f"slimedge {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """SLIM LSTM variants: train, export to ONNX/TFLite, run and profile."""


@app.command("variants")
@user_errors
def variants_cmd(
    input_size: int = typer.Option(28, "--input-size", "-m", min=1, help="Input size m."),
    hidden_size: int = typer.Option(100, "--hidden-size", "-n", min=1, help="Hidden size n."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The variant catalogue: gate forms, parameters and MACs per step, and ratios to LSTM0."""
    rows = variants.table(input_size, hidden_size)
    if as_json:
        sys.stdout.write(json.dumps({"input_size": input_size, "hidden_size": hidden_size,
                                     "variants": rows}, indent=2) + "\n")
        return
    t = Table(title=f"SLIM LSTM variants, one layer, m = {input_size}, n = {hidden_size}")
    for col, just in [("variant", "left"), ("gates i, f, o", "left"), ("cell c~", "left"),
                      ("params", "right"), ("× LSTM0", "right"), ("MACs/step", "right"),
                      ("× LSTM0", "right")]:
        t.add_column(col, justify=just)
    for r in rows:
        f = r["forms"]
        gates = f["i"] if f["i"] == f["f"] == f["o"] else f"{f['i']}; {f['f']}; {f['o']}"
        t.add_row(r["name"], gates, f["c"], f"{r['params']:,}", f"{r['params_ratio_to_lstm0']:.3f}",
                  f"{r['macs_per_step']:,}", f"{r['macs_ratio_to_lstm0']:.3f}")
    console.print(t)
    console.print("Fixed gate constants are defaults; set them per model (never trained). "
                  "MACs count W·x, U·h and u⊙h.", style="dim")


if __name__ == "__main__":  # pragma: no cover
    app()
