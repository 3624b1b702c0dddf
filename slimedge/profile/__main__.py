"""``python -m slimedge.profile --worker``: the worker process the profiler starts (see .worker)."""
import sys

from .worker import main

if sys.argv[1:] == ["--worker"]:
    sys.exit(main())
sys.exit("usage: python -m slimedge.profile --worker (the profiler starts it; see "
         "`slimedge profile --help`)")
