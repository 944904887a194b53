"""Two processes writing the same result files at once: every write lands whole, none fails."""

import subprocess
import sys

WRITER = """
import sys
from pathlib import Path
from r2mae_core.io import atomic_write_bytes
from r2mae_core.cache import cached
path, tag = Path(sys.argv[1]), sys.argv[2].encode()
for i in range(200):
    atomic_write_bytes(path, tag * 50_000)
    cached("concurrency", {"entry": 1}, lambda: {"tag": sys.argv[2]})
print("done")
"""


def test_two_processes_writing_one_entry_never_fail_or_mix(tmp_path):
    target = tmp_path / "entry.bin"
    env_cache = {"R2MAE_CACHE_DIR": str(tmp_path / "cache")}
    import os

    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(target), tag], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, **env_cache})
             for tag in ("A", "B")]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-500:] for o in outs]
    data = target.read_bytes()
    assert data in (b"A" * 50_000, b"B" * 50_000)  # one writer's whole file, never a mix
    assert not list(tmp_path.glob("*.partial")) and not list((tmp_path / "cache").rglob("*.partial"))
