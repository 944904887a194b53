"""Shared pytest fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture
def tmp_data_dir(tmp_path, monkeypatch):
    """An empty ``data/`` cache (``R2MAE_DATA_DIR``) that still finds the unpacked source packages."""
    from r2mae_core.data.registry import sources_dir

    monkeypatch.setenv("R2MAE_SOURCES_DIR", str(sources_dir()))
    monkeypatch.setenv("R2MAE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"
