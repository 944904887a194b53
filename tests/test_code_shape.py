"""The library stays readable: no function of ``r2mae_core`` runs over :data:`MAX_LINES` lines of code or takes
more than :data:`MAX_POSITIONAL` positional parameters.

A function's length is counted from its ``def`` line to its last line, without its docstring (numpydoc
docstrings carry formulas and sources and may be long; the code a reader must hold in mind may not). Complexity
is ruff's job (``[tool.ruff.lint]`` in pyproject.toml: C901 at 15). Positional parameters are counted here:
ruff's rule for them (PLR0917) is preview-only, and its stable PLR0913 counts keyword-only parameters too, which
are the cure, not the problem.
"""

from __future__ import annotations

import ast

from r2mae_core.fingerprint import PACKAGE_ROOT

#: Most lines of code in one function (a screen and a half).
MAX_LINES = 80
#: Most positional parameters of one function, ``self`` and ``cls`` not counted. Six is where a call stops being
#: readable by position: the library's widest formula signatures, ``theory.ridge_equivalent(mu, c, pi, n_eff,
#: ridge, y_var, ...)`` and the study points ``(config, family, law, n, tests, reps)``, name six quantities a reader
#: knows from the formula or the study, in its order; a seventh (a test vector, a seed, a profile, a flag) is read
#: as a name at the call, so it is keyword-only. Pylint's default (max-positional-arguments) is 5; one more keeps
#: the formula signatures whole.
MAX_POSITIONAL = 6


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1
    return lines


def _positional(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    names = [a.arg for a in node.args.posonlyargs + node.args.args]
    return len(names) - (1 if names and names[0] in ("self", "cls") else 0)


def _function_nodes():
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield f"{path.relative_to(PACKAGE_ROOT.parent)}::{node.name}", node


def _functions():
    for name, node in _function_nodes():
        yield name, _code_lines(node)


def test_the_measure_counts_code_not_docstrings():
    tree = ast.parse('def f(x):\n    """Doc.\n\n    More doc.\n    """\n    y = x\n    return y\n')
    assert _code_lines(tree.body[0]) == 3


def test_no_function_is_longer_than_the_limit():
    long = [f"{name}: {lines}" for name, lines in _functions() if lines > MAX_LINES]
    assert not long, f"functions over {MAX_LINES} lines of code (split them into named steps): {long}"


def test_the_library_has_functions_to_measure():
    assert sum(1 for _ in _functions()) > 500


def test_the_positional_count_leaves_out_self_and_keyword_only_parameters():
    tree = ast.parse("class A:\n    def f(self, a, b, /, c, *args, d, e=1, **kw):\n        pass\n"
                     "def g(cls_, a, *, b):\n    pass\n")
    method, function = tree.body[0].body[0], tree.body[1]
    assert _positional(method) == 3 and _positional(function) == 2


def test_no_function_takes_more_positional_parameters_than_the_limit():
    wide = [f"{name}: {_positional(node)}" for name, node in _function_nodes() if _positional(node) > MAX_POSITIONAL]
    assert not wide, f"functions with over {MAX_POSITIONAL} positional parameters (make the rest keyword-only): {wide}"
