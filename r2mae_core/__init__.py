"""r2mae_core: the library behind the r2mae companion notebooks.

Everything that computes lives here; the notebooks under ``notebooks/`` only call into it.
See ``../shared/DESIGN.md`` (or the README) for the map.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("r2mae-core")
except PackageNotFoundError:  # running from a source tree without `pip install -e .`
    __version__ = "0.1.0"

__all__ = ["__version__"]
