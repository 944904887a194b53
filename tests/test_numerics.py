"""Pinned CPU numerics: what is pinned, when, and that ./build.sh runs everything pinned."""

import os
import subprocess
import sys

import pytest

from r2mae_core import numerics
from r2mae_core.paths import REPO_ROOT

AVX2 = {"sse2", "avx", "avx2", "fma"}


def test_pinned_environment_overrides_what_the_machine_chose():
    env = numerics.pinned_environment({"OMP_NUM_THREADS": "64", "MKL_CBWR": "AUTO", "HOME": "/x"}, flags=AVX2)
    assert env["HOME"] == "/x"
    assert {k: env[k] for k in numerics.PINNED} == numerics.PINNED
    assert env[numerics.INDUCTOR_CACHE].endswith(f"torchinductor/{numerics.signature(env)}")
    assert env["OMP_NUM_THREADS"] == str(numerics.THREADS)


def test_nothing_is_pinned_natively_or_without_avx2():
    base = {"OMP_NUM_THREADS": "64"}
    assert numerics.pinned_environment({**base, "R2MAE_NUMERICS": "native"}, flags=AVX2) == {
        **base, "R2MAE_NUMERICS": "native"}
    assert numerics.pinned_environment(base, flags={"sse2", "avx"}) == base


def test_bad_switch_is_one_line():
    with pytest.raises(ValueError, match="R2MAE_NUMERICS='fast' is not allowed: use one of pinned, native"):
        numerics.pinned_environment({"R2MAE_NUMERICS": "fast"}, flags=AVX2)
    env = {**os.environ, "R2MAE_NUMERICS": "fast"}
    p = subprocess.run([sys.executable, "-m", "r2mae_core.numerics", "exports"], env=env, capture_output=True,
                       text=True)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [
        "error: R2MAE_NUMERICS='fast' is not allowed: use one of pinned, native"]


def test_cpu_flags_reads_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\nbugs\t: x\nflags\t: other\n")
    assert numerics.cpu_flags(info) == {"fpu", "sse2", "avx2", "fma"}
    assert numerics.cpu_flags(tmp_path / "missing") == set()
    assert numerics.can_pin({"avx2", "fma"}) and not numerics.can_pin({"avx2"})


def test_exports_prints_one_assignment_per_pinned_variable():
    dropped = {*numerics.PINNED, numerics.INDUCTOR_CACHE, "R2MAE_NUMERICS"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    p = subprocess.run([sys.executable, "-m", "r2mae_core.numerics", "exports"], env=env, capture_output=True,
                       text=True, check=True)
    lines = p.stdout.splitlines()
    if numerics.can_pin():
        exported = dict(line.split("=", 1) for line in lines)
        assert exported.pop(numerics.INDUCTOR_CACHE).endswith(f"torchinductor/{numerics.signature(exported)}")
        assert exported == numerics.PINNED
    else:
        assert lines == []


def test_build_sh_runs_commands_pinned():
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED}
    p = subprocess.run([str(REPO_ROOT / "build.sh"), "numerics"], env=env, capture_output=True, text=True,
                       check=True)
    described = dict(line.split(": ", 1) for line in p.stdout.splitlines() if ": " in line)
    if numerics.can_pin():
        assert described["numerics"] == "pinned"
        assert described["torch_cpu_capability"] == "AVX2"
        assert described["torch_threads"] == str(numerics.THREADS)
        assert described["numpy_simd"] == "X86_V3"
        assert described["mkl_cbwr"] == "AVX2"
        assert all(arch == "Haswell" for key, arch in described.items() if key.startswith("blas openblas"))
    else:
        assert described["numerics"] == "native"


def test_mode_and_the_cache_key_follow_the_pin(monkeypatch):
    from r2mae_core.cache import cache_key

    for key, value in numerics.PINNED.items():
        monkeypatch.setenv(key, value)
    assert numerics.mode() == "pinned" and numerics.signature().startswith("pinned-")
    pinned_key = cache_key("x", {"a": 1})
    monkeypatch.setitem(numerics.PINNED, "MKL_CBWR", "SSE4_2")  # other pinned values: another key
    monkeypatch.setenv("MKL_CBWR", "SSE4_2")
    assert numerics.mode() == "pinned" and cache_key("x", {"a": 1}) != pinned_key
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert numerics.mode() == "native" and numerics.signature() == "native"
    assert cache_key("x", {"a": 1}) != pinned_key
