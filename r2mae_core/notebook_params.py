"""The parameters cell of a notebook and the profile YAML that overrides it.

A notebook declares its parameters in exactly one cell tagged ``parameters``: one typed assignment of a
literal per line, each with a trailing comment (the smoke defaults). A profile YAML
(``parameters/<profile>/NN_slug.yaml``) may only set declared parameters, with values of the declared
type. Papermill would only warn about an unknown key; here it is an error, caught before any work.

The parameters cell is read from the notebook's jupytext percent-format script with the standard library alone
(the GPU image that runs the campaign's shards has no jupytext): ``tests/test_notebook_conventions.py`` checks
that it is the cell jupytext reads, for every notebook.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .paths import REPO_ROOT, check_notebook, check_profile

__all__ = ["Parameter", "read_parameters", "profile_yaml_path", "load_profile_parameters", "ParameterError"]


class ParameterError(ValueError):
    """A notebook's parameters cell or a profile YAML is malformed."""


@dataclass(frozen=True)
class Parameter:
    """One declared notebook parameter: its name, default (smoke) value, annotation and comment."""

    name: str
    default: Any
    annotation: str | None
    comment: str


def _notebook_source(notebook: str) -> Path:
    return REPO_ROOT / "notebooks" / f"{check_notebook(notebook)}.py"


#: A cell marker of jupytext's percent format: ``# %%``, an optional title, an optional cell type in brackets
#: (``[markdown]``), then ``key=value`` metadata such as ``tags=["parameters"]``
#: (https://jupytext.readthedocs.io/en/latest/formats-scripts.html#the-percent-format).
_CELL_MARKER = re.compile(r"^# %%(?P<rest>.*)$")
_CELL_TYPE = re.compile(r"\[(?P<type>\w+)\]")
_TAGS = re.compile(r"\btags=(?P<tags>\[[^\]]*\])")


def _marker_is_parameters_code_cell(rest: str) -> bool:
    cell_type = _CELL_TYPE.search(rest.split("tags=")[0])
    tags = _TAGS.search(rest)
    return cell_type is None and tags is not None and "parameters" in json.loads(tags["tags"])


def _parameters_cells(path: Path) -> list[str]:
    """The sources of the code cells tagged ``parameters`` in a percent-format script: a cell runs from its
    ``# %%`` marker to the next marker or the end, without the blank lines at its end (as jupytext reads it)."""
    cells: list[list[str]] = []
    current: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        marker = _CELL_MARKER.match(line)
        if marker:
            current = [] if _marker_is_parameters_code_cell(marker["rest"]) else None
            if current is not None:
                cells.append(current)
        elif current is not None:
            current.append(line)
    return ["\n".join(cell).rstrip("\n") for cell in cells]


def read_parameters(notebook: str, *, path: Path | None = None) -> dict[str, Parameter]:
    """Parse the ``parameters`` cell of ``notebooks/<notebook>.py``.

    Raises
    ------
    ParameterError
        No or several parameters cells; a statement that is not ``name[: type] = literal  # comment``.
    """
    path = path or _notebook_source(notebook)
    cells = _parameters_cells(path)
    if len(cells) != 1:
        raise ParameterError(f"{path.name}: needs exactly one cell tagged 'parameters', found {len(cells)}")
    source = cells[0]
    lines = source.splitlines()
    params: dict[str, Parameter] = {}
    for stmt in ast.parse(source).body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name, value_node, annotation = stmt.targets[0].id, stmt.value, None
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            name, value_node, annotation = stmt.target.id, stmt.value, ast.unparse(stmt.annotation)
        else:
            raise ParameterError(f"{path.name}: parameters cell line {stmt.lineno}: only 'name: type = literal' "
                                 "assignments are allowed")
        try:
            value = ast.literal_eval(value_node)
        except ValueError as err:
            raise ParameterError(f"{path.name}: parameter {name!r} is not a literal ({err})") from None
        line = lines[stmt.end_lineno - 1]
        comment = line.split("#", 1)[1].strip() if "#" in line else ""
        if name in params:
            raise ParameterError(f"{path.name}: parameter {name!r} is declared twice")
        params[name] = Parameter(name, value, annotation, comment)
    return params


def profile_yaml_path(profile: str, notebook: str) -> Path:
    """``parameters/<profile>/<notebook>.yaml`` (smoke has none: it is the notebook's own defaults)."""
    return REPO_ROOT / "parameters" / check_profile(profile) / f"{notebook}.yaml"


def _type_ok(default: Any, value: Any) -> bool:
    if default is None:
        return True
    if value is None:  # an empty YAML value: only where the notebook declares None
        return False
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, list | tuple):
        return isinstance(value, list | tuple)
    return isinstance(value, type(default))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_profile_parameters(profile: str, notebook: str) -> dict[str, Any]:
    """The validated parameter overrides of ``notebook`` at ``profile`` (``{}`` for smoke).

    Every key must be a declared parameter (other than ``profile``, which the runner sets), and every
    value must have the declared default's type (an int is accepted where a float is declared; an empty value,
    ``None``, only where the default is ``None``).

    Raises
    ------
    ParameterError
        Missing YAML for quick/full, a YAML that is not a mapping, an unknown key, a wrong type.
    """
    check_profile(profile)
    check_notebook(notebook)
    if profile == "smoke":
        return {}
    path = profile_yaml_path(profile, notebook)
    if not path.exists():
        raise ParameterError(f"{path.relative_to(REPO_ROOT)} is missing: every notebook needs quick and full YAML")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ParameterError(f"{path.relative_to(REPO_ROOT)} is not valid YAML: {str(err).splitlines()[0]}") \
            from None
    if not isinstance(values, dict):
        raise ParameterError(f"{path.relative_to(REPO_ROOT)} must be a mapping of parameter: value")
    declared = read_parameters(notebook)
    for key, value in values.items():
        if key == "profile":
            raise ParameterError(f"{path.relative_to(REPO_ROOT)}: key 'profile' is set by the runner, remove it")
        if key not in declared:
            raise ParameterError(f"{path.relative_to(REPO_ROOT)}: key {key!r} is not a parameter of {notebook} "
                                 f"(declared: {', '.join(sorted(declared))})")
        default = declared[key].default
        if not _type_ok(default, value):
            hint = ""
            if isinstance(default, float) and isinstance(value, str) and _is_number(value):
                hint = f" (YAML reads {value} as a string: write it with a decimal point, e.g. 1.0e-3)"
            raise ParameterError(f"{path.relative_to(REPO_ROOT)}: {key}={value!r} has type "
                                 f"{type(value).__name__}, the notebook declares {type(default).__name__}{hint}")
    return {k: (float(v) if isinstance(declared[k].default, float) and isinstance(v, int) else v)
            for k, v in values.items()}
