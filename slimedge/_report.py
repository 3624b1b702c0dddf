"""What every measurement report shares: the machine it ran on, and its section of BENCHMARKS.md."""
from __future__ import annotations

import json
import os
import platform
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from . import _io

LIBRARIES = ("numpy", "onnxruntime", "ai_edge_litert", "torch", "onnx")


def machine() -> dict:
    """CPU model, core count, load average, library versions: what the numbers were taken on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = version(lib.replace("_", "-"))
        except PackageNotFoundError:
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "loadavg": list(os.getloadavg()),
            "versions": versions}


def describe(m: dict) -> str:
    """One line for a report's header, e.g. 'AMD EPYC 7B13, 2 cores, Python 3.11.7, torch 2.13.0'."""
    libs = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
    return f"{m['cpu']}, {m['cores']} cores, Python {m['python']}" + (f"; {libs}" if libs else "")


def update_markdown_section(path: str | os.PathLike, heading: str, text: str) -> None:
    """Replace the section that starts with the line ``heading`` (up to the next '## ' heading)
    by ``text``, or append it; every other section stays as it is. Written atomically."""
    path = Path(path)
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    text = text.rstrip("\n") + "\n\n"  # a blank line before the next section
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(old):
        new = pattern.sub(lambda _: text, old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    _io.write_text(path, new.rstrip("\n") + "\n")


# ---- where a benchmark writes -------------------------------------------------------------------
def add_output_arguments(parser, results: Path, markdown: bool = True) -> None:
    """``--update`` and ``--out`` of a benchmark: by default it changes no tracked file (the
    results are printed); ``--update`` writes ``results`` and, where ``markdown``, its section of
    BENCHMARKS.md; ``--out`` writes the JSON to a path of one's own."""
    name = f"benchmarks/results/{Path(results).name}"
    parser.add_argument("--update", action="store_true",
                        help=f"write the tracked results ({name}"
                             + (" and BENCHMARKS.md's section" if markdown else "")
                             + "); without it no tracked file changes")
    parser.add_argument("--out", type=Path, default=None, metavar="JSON",
                        help=f"write the JSON results here [default: {name} with --update, "
                             f"else nowhere]")


def settle_outputs(args, results: Path) -> None:
    """Set ``args.out`` (the JSON to write, None: none), ``args.source`` (the JSON an option
    such as ``--table-only`` reads) and ``args.markdown`` (whether BENCHMARKS.md is rewritten)."""
    if args.out is None and args.update:
        args.out = Path(results)
    args.source = args.out or Path(results)
    args.markdown = bool(args.update) and not getattr(args, "no_markdown", False)


def shown_path(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """A file as a report names it: relative to ``root`` (the checkout) when inside it, else by
    its name alone (a scratch folder's path means nothing to a reader)."""
    path, root = Path(path).resolve(), Path(root).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else path.name


def command_line(script: str | os.PathLike, argv: list[str], root: str | os.PathLike,
                 drop: tuple[str, ...] = ("--workdir", "--out")) -> str:
    """The command a reader can run: ``script``'s path relative to ``root`` and ``argv``, less the
    options in ``drop`` (this machine's scratch paths; they change nothing in the results)."""
    import shlex

    args, skip = [], False
    for a in argv:
        if skip or a.startswith(tuple(f"{d}=" for d in drop)):
            skip = False
            continue
        if a in drop:
            skip = True
            continue
        args.append(a)
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(script, root), *args])


def write_outputs(args, results: Path, report: dict, text: str, bench: Path,
                  section: str) -> None:
    """Write what ``settle_outputs`` decided: the JSON ``report`` to ``args.out``, ``text`` as
    ``section`` of ``bench`` (BENCHMARKS.md); says what it wrote, or that it wrote nothing."""
    if args.out is not None:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        _io.write_text(Path(args.out), json.dumps(report, indent=1, default=float) + "\n")
        print(f"wrote {args.out}")
    if args.markdown:
        update_markdown_section(bench, section, text)
        print(f"wrote the {section!r} section of {bench}")
    elif args.out is None:
        print(nothing_written(results))


def nothing_written(results: Path) -> str:
    """The line a benchmark ends with when it wrote no file (neither --update nor --out)."""
    return (f"(no file written: --update writes benchmarks/results/{Path(results).name} and "
            f"BENCHMARKS.md; --out JSON writes the results where you say)")


def publish(args, result: dict | None, results: Path, bench: Path, section: str, markdown) -> None:
    """A benchmark's last step. ``result`` None (``--table-only``): the section from the JSON
    (``args.source``), printed, or written into ``bench`` with ``--update``. Else ``result`` is
    written where ``--update``/``--out`` say, and with ``--update`` its section (``markdown(result)``
    under the heading ``section``) too; without either nothing is written, and it says so."""
    if result is None:
        text = markdown(json.loads(Path(args.source).read_text()))
        if args.markdown:
            update_markdown_section(bench, section, text)
            print("rewrote BENCHMARKS.md from", args.source)
        else:
            print(text)
        return
    write_outputs(args, results, result, markdown(result), bench, section)
