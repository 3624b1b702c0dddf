"""``python -m slimedge`` and the ``slimedge`` command: the CLI, or which extra installs it."""
from __future__ import annotations

import sys


def main() -> None:
    from . import extras

    gone = extras.missing(*extras.EXTRAS["cli"])
    if gone:  # a runtime-only install: say what the command needs instead of a traceback
        sys.stderr.write(f"error: the slimedge command needs {', '.join(gone)}, not installed "
                         f"here: {extras.hint('cli')}\n")
        raise SystemExit(2)
    import signal

    from .cli import app

    # a plain kill (SIGTERM) exits as an error does: the temporary files of an output being
    # written are removed on the way out (SIGKILL's are removed by the next write beside them)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
