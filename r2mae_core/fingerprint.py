"""Fingerprints of the library's code, so that a cached result is keyed on the code that made it.

A cached result (a pretraining run, a Monte Carlo grid, a checkpoint) is a function of its config, its data and
the code that computed it. The cache keys (:func:`r2mae_core.cache.cache_key`) hold the first two exactly; for the
third they hold :func:`code_fingerprint` of the module that produces the result: a digest of that module's source
and of every ``r2mae_core`` module it imports, directly or through others. Editing a function therefore
invalidates the results of every module that imports the edited module (at module granularity: a coarser but
safe rule than tracing calls), and leaves the results of modules that do not import it untouched.

What counts as code. Each source file is reduced to its *program text*: comments, docstrings (the first string
statement of a module, class or function), blank lines and trailing whitespace are removed, so editing prose
does not invalidate results. Imports are read statically from the syntax tree, including imports inside functions
(a lazy import is a dependency too) and the ``__init__`` of every package on the way. The reduction works on the
source text, not on ``ast.dump`` (whose format changes between Python versions), so the same checkout gives the
same fingerprint under any Python 3.11+.

Cost: every file is read and parsed once per process (memoised on ``(path, mtime, size)``) and a module's
fingerprint of the running package is fixed at its first use; all 79 modules take about a second on a laptop-class
CPU core the first time (``python -m r2mae_core.fingerprint`` prints each and the time), nothing after that.
"""

from __future__ import annotations

import ast
import hashlib
import io
import sys
import time
import tokenize
from pathlib import Path

__all__ = ["PACKAGE", "PACKAGE_ROOT", "program_text", "module_imports", "dependencies", "code_fingerprint",
           "fingerprint_of"]

PACKAGE = "r2mae_core"
PACKAGE_ROOT = Path(__file__).resolve().parent
#: Hex digits of a fingerprint (64 bits: collisions between two code versions are not a practical concern).
DIGITS = 16

_memo: dict[tuple, tuple[str, frozenset[str]]] = {}
#: Fingerprints of the running package, fixed at first use: the code a process runs is the code it imported,
#: so a file edited while it runs changes neither its keys nor where it looks for what it stored.
_loaded: dict[str, str] = {}


_SCOPES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _statements(node: ast.AST):
    """``node`` and every statement nested in it (bodies of functions, classes, branches, loops, ``try`` and
    ``match``), without descending into expressions: imports and docstrings are statements."""
    yield node
    for field in ("body", "orelse", "finalbody", "handlers", "cases"):
        for child in getattr(node, field, ()) or ():
            if isinstance(child, ast.stmt | ast.excepthandler | ast.match_case):
                yield from _statements(child)


def _docstring_span(node: ast.AST) -> tuple[int, int, int, int] | None:
    """``(line, col, end_line, end_col)`` (1-based lines, UTF-8 byte columns) of ``node``'s docstring, if any."""
    first = node.body[0] if node.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first.lineno, first.col_offset, first.end_lineno, first.end_col_offset
    return None


def _blank(lines: list[bytes], span: tuple[int, int, int, int]) -> None:
    """Replace the bytes of ``span`` in ``lines`` (UTF-8, without line ends) by spaces."""
    line, col, end_line, end_col = span
    for i in range(line - 1, end_line):
        start = col if i == line - 1 else 0
        stop = end_col if i == end_line - 1 else len(lines[i])
        lines[i] = lines[i][:start] + b" " * (stop - start) + lines[i][stop:]


def program_text(source: str, tree: ast.AST | None = None) -> str:
    """``source`` without comments, docstrings, blank lines and trailing whitespace.

    Parameters
    ----------
    source
        The text of a Python module.
    tree
        Its syntax tree, if the caller has parsed it already.

    Returns
    -------
    str
        The remaining lines joined by ``\\n``: equal for two sources that differ only in prose or layout of
        blank lines, different for any change to the program (a changed token, an indentation change).
    """
    tree = ast.parse(source) if tree is None else tree
    lines = [line.encode() for line in source.splitlines()]
    for node in _statements(tree):
        if isinstance(node, _SCOPES) and (span := _docstring_span(node)) is not None:
            _blank(lines, span)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            (row, col), (_, end) = tok.start, tok.end
            text = lines[row - 1].decode()
            lines[row - 1] = (text[:col] + " " * (end - col) + text[end:]).encode()
    kept = (line.decode().rstrip() for line in lines)
    return "\n".join(line for line in kept if line.strip())


def _module_path(name: str, root: Path) -> Path | None:
    """The file of module ``name`` (``r2mae_core.x.y``) under ``root`` (the package folder), else None."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` → ``[a, a.b, a.b.c]``: importing a submodule runs every package ``__init__`` on the way."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def module_imports(name: str, tree: ast.AST, *, is_package: bool, root: Path = PACKAGE_ROOT) -> set[str]:
    """The ``r2mae_core`` modules that module ``name`` imports anywhere in ``tree`` (relative imports resolved,
    ``from package import submodule`` counted as the submodule, parent packages included)."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if _module_path(target, root) is not None:
                found.update(p for p in _with_parents(target) if _module_path(p, root) is not None)
    found.discard(name)
    return found


def _read(name: str, root: Path) -> tuple[str, frozenset[str]]:
    """(digest of the program text, imported modules) of module ``name``, memoised on the file's stat."""
    path = _module_path(name, root)
    if path is None:
        raise ValueError(f"module={name!r} is not allowed: it is not a module of the {PACKAGE} package under {root}")
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _memo:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
        digest = hashlib.sha256(program_text(source, tree).encode()).hexdigest()
        imports = module_imports(name, tree, is_package=path.name == "__init__.py", root=root)
        _memo[key] = (digest, frozenset(imports))
    return _memo[key]


def dependencies(name: str, *, root: Path = PACKAGE_ROOT) -> list[str]:
    """``name``, its parent packages and every ``r2mae_core`` module it imports transitively, sorted."""
    _read(name, root)  # one clear error for a name that is not a module of the package
    seen: set[str] = set()
    todo = [m for m in _with_parents(name) if _module_path(m, root) is not None]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(_read(module, root)[1] - seen)
    return sorted(seen)


def code_fingerprint(name: str, *, root: Path = PACKAGE_ROOT) -> str:
    """The fingerprint of module ``name``'s code: SHA-256 over the sorted (module, program-text digest) pairs of
    :func:`dependencies` (first :data:`DIGITS` hex digits).

    Parameters
    ----------
    name
        A module of the package, e.g. ``"r2mae_core.experiments.vision"``.
    root
        The package folder to read (tests point it at a copy).

    Raises
    ------
    ValueError
        ``name`` is not a module of the package under ``root``.
    """
    if root == PACKAGE_ROOT and name in _loaded:
        return _loaded[name]
    parts = [f"{module}:{_read(module, root)[0]}" for module in dependencies(name, root=root)]
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:DIGITS]
    if root == PACKAGE_ROOT:
        _loaded[name] = digest
    return digest


def fingerprint_of(function) -> str:
    """:func:`code_fingerprint` of the module that defines ``function`` (a ``functools.partial`` is looked
    through); ``""`` for a function from outside the package, whose code this library cannot see."""
    while hasattr(function, "func"):
        function = function.func
    module = getattr(function, "__module__", None) or ""
    if module == "__main__" or not module.startswith(PACKAGE + "."):
        return ""
    return code_fingerprint(module)


def main(argv: list[str] | None = None) -> int:
    """Print each module's fingerprint and how long the whole package took (first call: nothing memoised)."""
    start = time.perf_counter()
    names = sorted(".".join((PACKAGE, *p.relative_to(PACKAGE_ROOT).with_suffix("").parts)).removesuffix(".__init__")
                   for p in PACKAGE_ROOT.rglob("*.py"))
    prints = {n: code_fingerprint(n) for n in names}
    elapsed = time.perf_counter() - start
    for n, fp in prints.items():
        print(f"{fp}  {n}  ({len(dependencies(n))} modules)")
    print(f"{len(names)} modules fingerprinted in {elapsed * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
