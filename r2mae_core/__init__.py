"""r2mae_core: the library behind the r2mae companion notebooks.

Everything that computes lives here; the notebooks under ``notebooks/`` only call into it.
The map of the house: ``docs/ARCHITECTURE.md`` (layers, data flow, conventions, how to add a section, a
masking scheme or a parameter).
"""

from importlib.metadata import PackageNotFoundError, version

from ._rng import seed_everything

try:
    __version__ = version("r2mae-core")
except PackageNotFoundError:  # running from a source tree without `pip install -e .`
    __version__ = "0.1.0"

__all__ = ["__version__", "seed_everything"]
