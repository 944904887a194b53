"""Config checks shared by the section experiments: one clear ``ValueError`` line naming the parameter, its value
and what is allowed."""

from __future__ import annotations

import torch

from ..masking._checks import is_real

__all__ = ["check_int", "check_ratio", "check_number", "check_bool", "check_list", "check_device",
           "check_learning_rates", "check_sweep"]


def check_int(name: str, value, low: int) -> None:
    """``value`` must be an integer (not a bool) ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r} is not allowed: use an integer >= {low}")


def check_ratio(name: str, value) -> None:
    """``value`` must be a mask ratio in the open interval (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"{name}={value!r} is not allowed: use a mask ratio in the open interval (0, 1)")


def check_number(name: str, value, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float after checking it is a finite number (not a bool) within the bounds.

    Parameters
    ----------
    name, value
        The parameter and its value.
    low, high
        Bounds (None: unbounded on that side).
    low_open, high_open
        Whether ``low`` or ``high`` itself is excluded.
    """
    inside = is_real(value) and (low is None or (value > low if low_open else value >= low)) \
        and (high is None or (value < high if high_open else value <= high))
    if not inside:
        allowed = ""
        if low is not None and high is not None:
            allowed = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            allowed = f" {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            allowed = f" {'<' if high_open else '<='} {high:g}"
        raise ValueError(f"{name}={value!r} is not allowed: use a finite number{allowed}")
    return float(value)


def check_bool(name: str, value) -> None:
    """``value`` must be ``True`` or ``False`` (a string such as ``'no'`` would count as true)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not allowed: use true or false")


def check_list(name: str, values) -> tuple:
    """``values`` as a tuple after checking it is a list or tuple (a string is not a list of its characters)."""
    if not isinstance(values, list | tuple):
        raise ValueError(f"{name}={values!r} is not allowed: use a list")
    return tuple(values)


def check_device(name: str, value) -> None:
    """``value`` must name a torch device, such as ``'cpu'``, ``'cuda'`` or ``'cuda:1'``."""
    try:
        torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not allowed: use a torch device such as 'cpu' or 'cuda'") from None


def check_learning_rates(name: str, values) -> tuple[float, ...]:
    """``values`` must be a non-empty list or tuple of learning rates, each a number (not a bool) > 0; returns
    them as a tuple of floats."""
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0] \
        if isinstance(values, list | tuple) else [values]
    if bad or not values:
        raise ValueError(f"{name}={values!r} is not allowed: use a non-empty list of learning rates > 0")
    return tuple(float(v) for v in values)


def check_sweep(config, sizes: dict) -> None:
    """The model sizes and ratios of a section config: ``config.sizes`` non-empty and, with ``main_size``, keys of
    ``sizes``; ``main_size`` among ``config.sizes``; at least one sweep ratio; every sweep and test ratio a mask
    ratio in (0, 1)."""
    if not config.sizes:
        raise ValueError(f"sizes=[] is not allowed: use some of {list(sizes)}")
    unknown = [s for s in (*config.sizes, config.main_size) if s not in sizes]
    if unknown:
        raise ValueError(f"size={unknown[0]!r} is not allowed: use one of {list(sizes)}")
    if config.main_size not in config.sizes:
        raise ValueError(f"main_size={config.main_size!r} is not allowed: use one of sizes {config.sizes}")
    if not config.sweep_ratios:
        raise ValueError("sweep_ratios=() is not allowed: give at least one fixed ratio")
    for name in ("sweep_ratios", "test_ratios"):
        for value in getattr(config, name):
            check_ratio(name, value)
