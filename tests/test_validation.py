"""The one validation module and the declared field checks of the section configs (docs/ARCHITECTURE.md §4, §9).

A notebook parameter is declared in two places only: the notebook's parameters cell and its section ``Config``
field, whose declared check (:func:`r2mae_core.validation.param`) the shared code runs; the notebook hands every
parameter that is a field over with :func:`r2mae_core.validation.from_parameters`. The tests below guard that
rule, and drill every field of every section ``Config`` with a value of no allowed type.
"""

import ast
import dataclasses
import importlib

import numpy as np
import pytest

from r2mae_core import validation
from r2mae_core.notebook_params import read_parameters
from r2mae_core.paths import REPO_ROOT

#: Notebook -> its section module.
SECTIONS = {"00_masking_tour": "masking_tour", "01_linear_theory": "linear_theory", "02_vision": "vision",
            "03_language": "language", "04_dna": "dna", "05_single_cell": "single_cell",
            "06_spectral_clustering": "spectral_clustering"}
#: Notebook parameters that are not study settings: the profile (set by the runner) and how the runs execute
#: (device, compilation, ensemble size), passed to ``run`` where the section's Config does not hold them.
RUN_OPTIONS = {"profile", "device", "compile_model", "ensemble_size"}


def _config(notebook: str) -> type:
    return importlib.import_module(f"r2mae_core.experiments.{SECTIONS[notebook]}").Config


@pytest.mark.parametrize("notebook", SECTIONS)
def test_every_study_parameter_is_a_config_field(notebook):
    fields = {f.name for f in dataclasses.fields(_config(notebook))}
    missing = set(read_parameters(notebook)) - fields - RUN_OPTIONS
    assert not missing, f"{notebook}: parameters that are not {SECTIONS[notebook]}.Config fields: {sorted(missing)}"


@pytest.mark.parametrize("notebook", SECTIONS)
def test_the_notebook_hands_its_parameters_over_without_naming_them(notebook):
    """The Config is built by ``validation.from_parameters(<section>.Config, globals())``, and nothing else the
    notebook defines at top level carries a field's name (it would be taken for the parameter)."""
    tree = ast.parse((REPO_ROOT / "notebooks" / f"{notebook}.py").read_text(encoding="utf-8"))
    calls = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func).endswith(
        "Config")]
    assert not calls, f"{notebook} calls the Config directly: {calls}"
    assert f"validation.from_parameters({SECTIONS[notebook]}.Config, globals())" in ast.unparse(tree)
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    fields = {f.name for f in dataclasses.fields(_config(notebook))}
    assert not (names - set(read_parameters(notebook))) & fields


@pytest.mark.parametrize("notebook", SECTIONS)
def test_from_parameters_gives_the_config_of_the_cell_defaults(notebook):
    params = {name: p.default for name, p in read_parameters(notebook).items()}
    config = validation.from_parameters(_config(notebook), {**params, "unrelated": object()})
    for name, value in params.items():
        if hasattr(config, name):
            got = getattr(config, name)
            assert (list(got) if isinstance(got, tuple) else got) == value, name


@pytest.mark.parametrize("notebook", SECTIONS)
def test_every_config_field_refuses_a_value_of_no_allowed_type(notebook, raises_one_line):
    config = _config(notebook)
    for f in dataclasses.fields(config):
        raises_one_line(lambda f=f: config(**{f.name: object()}), (f"{f.name}=", "is not allowed"))


def test_a_bool_is_never_a_number_a_count_or_a_choice(raises_one_line):
    raises_one_line(lambda: validation.check_int("n", True, 0), ("n=True", "an integer >= 0"))
    raises_one_line(lambda: validation.check_number("lr", False, low=0), ("lr=False",))
    raises_one_line(lambda: validation.check_ratio("ratio", True), ("ratio=True",))
    raises_one_line(lambda: validation.check_choice("patch", True, (1, 2, 4)), ("patch=True", "one of 1, 2, 4"))
    raises_one_line(lambda: validation.check_numbers("cs", [1.0, True], low=0), ("cs=[1.0, True]",))
    assert validation.check_choice("flag", True, (True, False)) is True


def test_messages_name_the_owner_the_parameter_the_value_and_what_is_allowed(raises_one_line):
    message = raises_one_line(lambda: validation.check_ratio("low", 1.5, owner="R2MAE"), ())
    assert message == "R2MAE: low=1.5 is not allowed: use a mask ratio in the open interval (0, 1)"
    message = raises_one_line(lambda: validation.check_number("warmup", 1.0, low=0, high=1, high_open=True), ())
    assert message == "warmup=1.0 is not allowed: use a finite number in [0, 1)"
    raises_one_line(lambda: validation.check_int("kmer", 7, 1, 6), ("kmer=7", "in [1, 6]"))
    raises_one_line(lambda: validation.check_seed("seed", -1), ("seed=-1", "[0, 2**63 - 1]"))
    raises_one_line(lambda: validation.check_intervals("ab", [[0.5, 0.2]]), ("ab=[[0.5, 0.2]]", "0 < a < b < 1"))
    raises_one_line(lambda: validation.check_member("main_size", "M", "sizes", ("S",)), ("main_size='M'", "sizes"))
    raises_one_line(lambda: validation.check_device("device", "tpu"), ("device='tpu'",))
    raises_one_line(lambda: validation.check_torch_generator("generator", 42, owner="f"), ("f: generator=42",))


def test_checks_return_the_working_form_and_keep_values_as_given():
    assert validation.check_int("n", np.int64(3), 1) == 3 and type(validation.check_int("n", np.int64(3), 1)) is int
    assert validation.check_ratios("r", [0.5, 0.75]) == (0.5, 0.75)
    assert validation.check_numbers("c", [1, 10]) == (1, 10)  # kept: a value as given keys the same runs
    assert validation.check_learning_rates("lrs", [1]) == (1.0,)
    assert validation.check_intervals("ab", [[0.2, 0.9]]) == ((0.2, 0.9),)


def test_check_fields_runs_each_declared_check_and_stores_list_fields_as_tuples(raises_one_line):
    @dataclasses.dataclass(frozen=True)
    class Settings:
        steps: int = validation.param(3, validation.count(1))
        ratios: tuple = validation.param([0.5], validation.check_ratios)
        free: str = "anything"

        def __post_init__(self):
            validation.check_fields(self)

    settings = Settings(ratios=[0.25, 0.5])
    assert settings.ratios == (0.25, 0.5) and hash(settings)
    assert Settings().ratios == (0.5,)
    raises_one_line(lambda: Settings(steps=0), ("steps=0", ">= 1"))
    raises_one_line(lambda: Settings(ratios=[1.5]), ("ratios=[1.5]",))
