"""The library stays readable: no function of ``r2mae_core`` runs over :data:`MAX_LINES` lines of code.

A function's length is counted from its ``def`` line to its last line, without its docstring (numpydoc
docstrings carry formulas and sources and may be long; the code a reader must hold in mind may not). Complexity
and argument counts are ruff's job (``[tool.ruff.lint]`` in pyproject.toml: C901 and PLR0917).
"""

from __future__ import annotations

import ast

from r2mae_core.fingerprint import PACKAGE_ROOT

#: Most lines of code in one function (a screen and a half).
MAX_LINES = 80


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1
    return lines


def _functions():
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield f"{path.relative_to(PACKAGE_ROOT.parent)}::{node.name}", _code_lines(node)


def test_the_measure_counts_code_not_docstrings():
    tree = ast.parse('def f(x):\n    """Doc.\n\n    More doc.\n    """\n    y = x\n    return y\n')
    assert _code_lines(tree.body[0]) == 3


def test_no_function_is_longer_than_the_limit():
    long = [f"{name}: {lines}" for name, lines in _functions() if lines > MAX_LINES]
    assert not long, f"functions over {MAX_LINES} lines of code (split them into named steps): {long}"


def test_the_library_has_functions_to_measure():
    assert sum(1 for _ in _functions()) > 500
