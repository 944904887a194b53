"""Config checks shared by the section experiments: one clear ``ValueError`` line naming the parameter, its value
and what is allowed."""

from __future__ import annotations

__all__ = ["check_int", "check_ratio"]


def check_int(name: str, value, low: int) -> None:
    """``value`` must be an integer (not a bool) ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r} is not allowed: use an integer >= {low}")


def check_ratio(name: str, value) -> None:
    """``value`` must be a mask ratio in the open interval (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"{name}={value!r} is not allowed: use a mask ratio in the open interval (0, 1)")
