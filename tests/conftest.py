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


def _raises_one_line(call, needles) -> str:
    """Call ``call``; it must raise ``ValueError`` with a one-line message containing every one of ``needles``."""
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


@pytest.fixture
def raises_one_line():
    """The bad-input check of the library's convention: ``raises_one_line(call, needles)``."""
    return _raises_one_line
