"""``python -m slimedge.cli``: the command line (see slimedge.__main__ for the installed command)."""
from slimedge.__main__ import main

main()
