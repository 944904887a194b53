"""Argument checks of the whole library: bad input fails at once with one ``ValueError`` line naming the
parameter, its value and what is allowed (``docs/ARCHITECTURE.md §4``).

Every check takes the parameter's ``name`` and ``value`` first and an optional keyword ``owner`` (the class or
function it belongs to, written before the name: ``"R2MAE: low=0.9 is not allowed: ..."``), and returns the
value it accepted in its working form (a float, an int, a tuple).

A section ``Config`` declares each field's check once, next to its default, with :func:`param`;
:func:`check_fields` runs them all, in field order, from the ``Config``'s ``__post_init__`` (cross-field rules,
such as ``low < high``, stay in the ``Config``). :func:`from_parameters` builds a ``Config`` from a notebook's
parameters, so a notebook parameter that is a ``Config`` field is declared in the parameters cell and the
``Config`` only.

numpy only at import: torch is imported where a check needs it (devices, generators), so the linear theory and
the masking samplers validate their input without torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import field, fields
from functools import partial
from typing import Any

import numpy as np

__all__ = ["MAX_SEED", "is_real", "is_int", "check_int", "check_number", "check_numbers", "check_ratio",
           "check_ratios", "check_intervals", "check_seed", "check_bool", "check_list", "check_mapping", "check_choice",
           "check_choices", "check_member", "check_device", "check_learning_rates", "check_per", "check_progress",
           "check_torch_generator", "count", "POSITIVE", "NON_NEGATIVE", "FRACTION", "WARMUP", "param",
           "check_fields", "from_parameters"]


#: The largest seed (numpy's ``SeedSequence`` takes any non-negative integer; torch's ``manual_seed`` 63 bits).
MAX_SEED = 2**63 - 1


def is_real(x: object) -> bool:
    """A finite real number that is not a bool (``True`` is an ``int`` in Python, never a number here)."""
    numeric = isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)
    return numeric and math.isfinite(x)


def is_int(x: object) -> bool:
    """An integer (Python or numpy) that is not a bool."""
    return not isinstance(x, bool) and isinstance(x, int | np.integer)


def _refuse(name: str, value: object, allowed: str, owner: str | None) -> ValueError:
    """The one-line error: ``[owner: ]name=value is not allowed: use <allowed>``."""
    return ValueError(f"{owner + ': ' if owner else ''}{name}={value!r} is not allowed: use {allowed}")


def check_int(name: str, value: object, low: int, high: int | None = None, *, owner: str | None = None) -> int:
    """``value`` as an int after checking it is an integer (not a bool) with ``low <= value`` (``<= high``)."""
    if not is_int(value) or value < low or (high is not None and value > high):
        raise _refuse(name, value, f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]",
                      owner)
    return int(value)


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """The allowed range in words: ``" in [0, 1)"``, ``" > 0"``, ``" <= 1"`` or ``""``."""
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""


def _inside(value: object, low: float | None, high: float | None, low_open: bool, high_open: bool) -> bool:
    return is_real(value) and (low is None or (value > low if low_open else value >= low)) \
        and (high is None or (value < high if high_open else value <= high))


def check_number(name: str, value: object, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, owner: str | None = None) -> float:
    """``value`` as a float after checking it is a finite number (not a bool) within the bounds.

    Parameters
    ----------
    name, value
        The parameter and its value.
    low, high
        Bounds (None: unbounded on that side).
    low_open, high_open
        Whether ``low`` or ``high`` itself is excluded.
    owner
        The class or function the parameter belongs to (written before the name), or None.
    """
    if not _inside(value, low, high, low_open, high_open):
        raise _refuse(name, value, f"a finite number{_interval(low, high, low_open, high_open)}", owner)
    return float(value)


def check_numbers(name: str, values: object, *, low: float | None = None, high: float | None = None,
                  low_open: bool = False, high_open: bool = False, min_len: int = 1, what: str = "numbers",
                  owner: str | None = None) -> tuple:
    """``values`` as a tuple after checking it is a list of at least ``min_len`` finite numbers (no bools), each
    within the bounds (as :func:`check_number`); ``what`` names them in the message. The values are kept as
    given (a number written as given keys the same runs)."""
    ok = isinstance(values, list | tuple) and len(values) >= min_len \
        and all(_inside(v, low, high, low_open, high_open) for v in values)
    if not ok:
        raise _refuse(name, values, f"a list of at least {min_len} {what}{_interval(low, high, low_open, high_open)}",
                      owner)
    return tuple(values)


def check_ratio(name: str, value: object, *, owner: str | None = None) -> float:
    """``value`` as a float after checking it is a mask ratio in the open interval (0, 1)."""
    if not _inside(value, 0.0, 1.0, True, True):
        raise _refuse(name, value, "a mask ratio in the open interval (0, 1)", owner)
    return float(value)


def check_ratios(name: str, values: object, *, min_len: int = 1, owner: str | None = None) -> tuple:
    """``values`` as a tuple after checking it is a list of at least ``min_len`` mask ratios in (0, 1) (the
    values themselves are kept: a ratio written as given keys the same runs)."""
    if not isinstance(values, list | tuple) or len(values) < min_len \
            or not all(_inside(v, 0.0, 1.0, True, True) for v in values):
        raise _refuse(name, values, f"a list of at least {min_len} mask ratio(s) in the open interval (0, 1)", owner)
    return tuple(values)


def check_intervals(name: str, values: object, *, owner: str | None = None) -> tuple[tuple[float, float], ...]:
    """``values`` as a tuple of float pairs after checking it is a list of intervals ``[a, b]`` of mask ratios
    with ``0 < a < b < 1``."""
    ok = isinstance(values, list | tuple) and all(
        isinstance(ab, list | tuple) and len(ab) == 2 and all(_inside(v, 0.0, 1.0, True, True) for v in ab)
        and ab[0] < ab[1] for ab in values)
    if not ok:
        raise _refuse(name, values, "a list of pairs [a, b] of mask ratios with 0 < a < b < 1", owner)
    return tuple((float(a), float(b)) for a, b in values)


def check_seed(name: str, value: object, *, owner: str | None = None) -> int:
    """``value`` as an int after checking it is a seed: an integer in [0, 2**63 - 1]."""
    if not is_int(value) or not 0 <= int(value) <= MAX_SEED:
        raise _refuse(name, value, "an integer in [0, 2**63 - 1]", owner)
    return int(value)


def check_bool(name: str, value: object, *, owner: str | None = None) -> bool:
    """``value`` must be ``True`` or ``False`` (a string such as ``'no'`` would count as true)."""
    if not isinstance(value, bool):
        raise _refuse(name, value, "true or false", owner)
    return value


def check_list(name: str, values: object, *, owner: str | None = None) -> tuple:
    """``values`` as a tuple after checking it is a list or tuple (a string is not a list of its characters)."""
    if not isinstance(values, list | tuple):
        raise _refuse(name, values, "a list", owner)
    return tuple(values)


def _chosen(value: object, choices: tuple | Mapping) -> bool:
    """``value`` is one of ``choices`` (an unhashable value never is; ``True`` is not the choice ``1``)."""
    if isinstance(value, list | dict | set) or value not in choices:
        return False
    return not isinstance(value, bool) or any(c is value for c in choices)


def check_mapping(name: str, value: object, *, owner: str | None = None) -> dict:
    """``value`` must be a mapping (a dict)."""
    if not isinstance(value, dict):
        raise _refuse(name, value, "a mapping of name: value", owner)
    return value


def check_choice(name: str, value: object, choices: tuple | Mapping, *, owner: str | None = None) -> object:
    """``value`` must be one of ``choices`` (a tuple, or the keys of a mapping)."""
    if not _chosen(value, choices):
        raise _refuse(name, value, f"one of {', '.join(map(str, choices))}", owner)
    return value


def check_choices(name: str, values: object, choices: tuple | Mapping, *, min_len: int = 0,
                  owner: str | None = None) -> tuple:
    """``values`` as a tuple after checking it is a list of at least ``min_len`` of ``choices`` (the message names
    the first value that is not a choice, or the whole value when it is not such a list)."""
    some = "some" if min_len == 0 else f"at least {min_len}"
    allowed = f"a list of {some} of {', '.join(map(str, choices))}"
    if not isinstance(values, list | tuple) or len(values) < min_len:
        raise _refuse(name, values, allowed, owner)
    bad = [v for v in values if not _chosen(v, choices)]
    if bad:
        raise _refuse(name, bad[0], allowed, owner)
    return tuple(values)


def check_member(name: str, value: object, among_name: str, among: tuple, *, owner: str | None = None) -> object:
    """``value`` must be one of ``among``, the value of the parameter ``among_name`` (a cross-field rule)."""
    if value not in among:
        raise _refuse(name, value, f"one of {among_name} {list(among)}", owner)
    return value


def check_device(name: str, value: object, *, owner: str | None = None) -> str:
    """``value`` must name a torch device, such as ``'cpu'``, ``'cuda'`` or ``'cuda:1'``."""
    import torch

    try:
        torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise _refuse(name, value, "a torch device such as 'cpu' or 'cuda'", owner) from None
    return value


def check_learning_rates(name: str, values: object, *, owner: str | None = None) -> tuple[float, ...]:
    """``values`` as a tuple of floats after checking it is a non-empty list of learning rates, each > 0."""
    values = check_numbers(name, values, low=0, low_open=True, what="learning rates", owner=owner)
    return tuple(float(v) for v in values)


def check_per(name: str, value: object, *, owner: str | None = None) -> str:
    """``value`` must be ``"batch"`` (one ratio per call) or ``"sample"`` (one per row)."""
    if value not in ("batch", "sample"):
        raise _refuse(name, value, "'batch' (one ratio per call) or 'sample'", owner)
    return value


def check_progress(name: str, value: object, *, owner: str | None = None) -> float:
    """Training progress t = step / total_steps as a float after checking it is in [0, 1]."""
    if not _inside(value, 0.0, 1.0, False, False):
        raise _refuse(name, value, "training progress t = step/total in [0, 1]", owner)
    return float(value)


def check_torch_generator(name: str, value: object, *, owner: str | None = None):
    """``value`` after checking it is a ``torch.Generator`` (without torch installed nothing is)."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None or not isinstance(value, torch.Generator):
        raise _refuse(name, value, "a torch.Generator", owner)
    return value


def count(low: int, high: int | None = None) -> Callable:
    """The check of an integer field ``>= low`` (``<= high``)."""
    return partial(check_int, low=low, high=high)


#: Declared checks shared by the section configs (``lr: float = param(1e-3, POSITIVE)``): a number > 0 (rates,
#: scales), >= 0 (weight decay, ridges), in (0, 1) (fractions of a split) and in [0, 1) (warmup fractions).
POSITIVE = partial(check_number, low=0, low_open=True)
NON_NEGATIVE = partial(check_number, low=0)
FRACTION = partial(check_number, low=0, high=1, low_open=True, high_open=True)
WARMUP = partial(check_number, low=0, high=1, high_open=True)


def param(default: Any, check: Callable, **options) -> Any:
    """A dataclass field with its default and its declared check ``check(name, value, **options)``.

    A list or dict default becomes a default factory (a fresh copy per instance); :func:`check_fields` runs the
    check and, for a list-valued field, stores what it returns (a tuple: configs are hashable).
    """
    check = partial(check, **options) if options else check
    if isinstance(default, list | dict):
        import copy

        return field(default_factory=lambda: copy.deepcopy(default), metadata={"check": check})
    return field(default=default, metadata={"check": check})


def check_fields(config: object) -> None:
    """Run the declared check of every field of the dataclass ``config`` in field order (the first bad value
    raises its one line); a list or tuple value is replaced by what its check returns."""
    for f in fields(config):
        check = f.metadata.get("check")
        if check is None:
            continue
        value = getattr(config, f.name)
        out = check(f.name, value)
        if isinstance(value, list | tuple) and isinstance(out, tuple):
            object.__setattr__(config, f.name, out)


def from_parameters(cls: type, namespace: Mapping[str, Any]):
    """``cls(**values)`` of the names in ``namespace`` (a notebook's ``globals()``) that are fields of the
    dataclass ``cls``; a field the namespace lacks keeps its default."""
    return cls(**{f.name: namespace[f.name] for f in fields(cls) if f.init and f.name in namespace})
