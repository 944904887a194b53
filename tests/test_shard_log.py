"""The GPU shard command's log (:mod:`r2mae_core.shard_log`): rows per group, the FLOP-weighted rate, the table
the README shows, and archives without a log."""

import tarfile

import pytest

from r2mae_core import campaign, shard_log
from r2mae_core.runs import RunSpec, fixed_method
from r2mae_core.train import TrainConfig


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    monkeypatch.setenv("R2MAE_LEDGER_DIR", str(tmp_path / "ledger"))
    return tmp_path / "ledger"


def _spec(seed: int, steps: int = 100) -> RunSpec:
    return RunSpec(namespace="image_runs", family="vit", size="S", method=fixed_method(0.75), seed=seed,
                   train=TrainConfig(steps=steps, batch_size=256))


def _log(groups: list[dict], peak: float | None = 1e15) -> dict:
    return {"format": shard_log.LOG_FORMAT, "notebook": "02_vision", "shard": [0, 2], "profile": "full",
            "device": "NVIDIA H200", "torch": "2.11.0+cu130", "started": "2026-12-06T10:00:00Z",
            "updated": "2026-12-06T10:07:30Z", "peak": peak, "peak_dtype": "bfloat16", "groups": groups}


def test_a_group_row_rates_its_pretraining_against_the_peak():
    """Two members of 100 steps at 2 GFLOP a step in 4 s: R = 2 · 100 · 2e9 / 4 = 1e11 FLOP/s."""
    group = [_spec(0), _spec(1)]
    results = [{"metrics": {"train_seconds": 3.5}, "eval_seconds": 1.0},
               {"metrics": {"train_seconds": 4.0}, "eval_seconds": 2.0}]
    row = shard_log.group_row(group, results, wall_s=9.0, member_flops=2e9, peak=1e12)
    assert row["runs"] == 2 and row["steps"] == 100 and row["pretrain_s"] == 4.0 and row["eval_s"] == 3.0
    assert row["achieved_flops"] == pytest.approx(1e11) and row["frac_peak"] == pytest.approx(0.1)


def test_a_group_without_pretraining_time_or_flops_has_no_rate():
    """Token records report ``seconds``; 05's pretrained units report neither time nor counted FLOPs."""
    token = shard_log.group_row([_spec(0)], [{"seconds": 2.0}], 3.0, member_flops=1e9, peak=None)
    assert token["pretrain_s"] == 2.0 and token["eval_s"] is None
    assert token["achieved_flops"] == pytest.approx(100 * 1e9 / 2.0) and token["frac_peak"] is None
    units = shard_log.group_row([_spec(0), _spec(1)], [{"history": None}] * 2, 5.0, member_flops=0.0, peak=1e15)
    assert units["pretrain_s"] is None and units["achieved_flops"] is None and units["frac_peak"] is None


def test_the_summary_weights_each_group_by_its_flops():
    """Groups of 4e14 FLOPs in 2 s and 1e14 in 3 s: (4e14 + 1e14) / 5 s = 1e14 FLOP/s, 10% of 1e15; the group
    without a rate adds its runs, not its time."""
    groups = [{"runs": 4, "steps": 1000, "member_flops": 1e11, "pretrain_s": 2.0, "achieved_flops": 2e14},
              {"runs": 1, "steps": 1000, "member_flops": 1e11, "pretrain_s": 3.0, "achieved_flops": 3.3e13},
              {"runs": 3, "steps": 0, "member_flops": 0.0, "pretrain_s": None, "achieved_flops": None}]
    s = shard_log.summary(_log(groups))
    assert s["runs"] == 8 and s["groups"] == 3 and s["minutes"] == pytest.approx(7.5)
    assert s["achieved_flops"] == pytest.approx(1e14) and s["frac_peak"] == pytest.approx(0.1)
    assert shard_log.summary(_log(groups[2:]))["achieved_flops"] is None


def test_kept_logs_make_the_provenance_table(ledger):
    assert shard_log.provenance_markdown().startswith("No shard of the GPU route has been taken in yet")
    groups = [{"runs": 4, "steps": 1000, "member_flops": 1e11, "pretrain_s": 2.0, "achieved_flops": 2e14}]
    path = shard_log.save(_log(groups), "02_vision-0of2.tar", results=4)
    assert path == ledger / "_shards" / "02_vision-0of2_full_20261206T100000Z.json"
    shard_log.save({**_log([]), "profile": "smoke"}, "02_vision-0of2.tar", results=0)  # another profile
    table = shard_log.provenance_markdown("full").splitlines()
    assert len(table) == 3
    assert table[2] == ("| 02_vision | 0/2 | NVIDIA H200 | 2026-12-06 10:00:00 | 2.11.0+cu130 | 1 | 4 | 7.5 | "
                        "1000.0 bfloat16 | 200.0 (20.0%) |")


def test_an_archive_without_a_log_reads_as_none_and_a_broken_one_is_refused(tmp_path):
    archive = tmp_path / "04_dna-0of1.tar"
    with tarfile.open(archive, "w"):
        pass
    with tarfile.open(archive) as tar:
        assert shard_log.read(tar) is None
    campaign.append_entries(archive, [shard_log.entry(_log([]))])
    campaign.append_entries(archive, [shard_log.entry({**_log([]), "device": "later"})])
    with tarfile.open(archive) as tar:
        assert shard_log.read(tar)["device"] == "later"  # the last copy
    campaign.append_entries(archive, [(shard_log.MEMBER, b"{x]")])
    with tarfile.open(archive) as tar, pytest.raises(ValueError, match="_shard.json is not JSON"):
        shard_log.read(tar)
