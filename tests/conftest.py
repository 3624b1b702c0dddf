import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # tests/reference.py
# the C backend's library cache: a private folder of this run (never a shared home's), unless set
os.environ.setdefault("SLIMEDGE_CACHE", tempfile.mkdtemp(prefix="slimedge-test-cache-"))


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run only where torch sees a CUDA device. Elsewhere they are deselected,
    not skipped: no install provides a GPU, so CI (no skips allowed) cannot run them, and the
    same kernels are checked on the CPU in Triton's interpreter (tests/test_fused.py)."""
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu:
        return
    import torch

    if torch.cuda.is_available():
        return
    config.hook.pytest_deselected(items=gpu)
    items[:] = [item for item in items if not item.get_closest_marker("gpu")]


def pytest_sessionfinish(session, exitstatus):
    """Under CI (SLIMEDGE_NO_SKIPS=1) a skipped test fails the run: every test's dependencies (the
    data wheels, LiteRT, torch) are installed there, so a skip would hide a broken set-up."""
    import os

    if os.environ.get("SLIMEDGE_NO_SKIPS") != "1" or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(f"SLIMEDGE_NO_SKIPS=1: {len(skipped)} test(s) skipped; failing the run",
                            red=True)
        session.exitstatus = 1
