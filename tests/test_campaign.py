"""The GPU route (:mod:`r2mae_core.campaign`): shards of a section's plan run headlessly into one archive per
shard, the archive is checked against this machine's plan before its results enter the ledger, and the engine
then finds every run there without training."""

import io
import tarfile

import pytest

from r2mae_core import campaign, shard_log
from r2mae_core.experiments import dna, language
from r2mae_core.records import load_record, save_record
from r2mae_core.runs import groups, ledger_path


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    monkeypatch.setenv("R2MAE_LEDGER_DIR", str(tmp_path / "ledger"))
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "cache"))
    for module in (dna, language):
        module._corpus_cached.cache_clear()
    yield tmp_path / "ledger"
    for module in (dna, language):
        module._corpus_cached.cache_clear()


def _entries(archive):
    with tarfile.open(archive) as tar:
        return sorted(m.name for m in tar.getmembers() if m.name.endswith(".npz"))


def test_a_smoke_shard_comes_back_and_the_engine_then_trains_nothing(ledger, tmp_path, monkeypatch):
    sec = campaign.section("04_dna", "smoke")
    shard = (1, 3)
    archive = campaign.run_shard("04_dna", shard, tmp_path / "out", profile="smoke", device="cpu", group_size=2,
                                 progress=False)
    runs = campaign.shard_runs(sec, shard)
    assert archive.name == "04_dna-1of3.tar" and len(_entries(archive)) == len(runs) > 0
    with tarfile.open(archive) as tar:  # the command's log: device, peak and a row per group, the last copy read
        log = shard_log.read(tar)
        assert sum(m.name == shard_log.MEMBER for m in tar.getmembers()) == 1 + len(log["groups"])
    assert log["device"] == "cpu" and log["notebook"] == "04_dna" and log["shard"] == [1, 3]
    assert log["peak"] > 0 and log["peak_dtype"] == "float32" and len(log["groups"]) == len(groups(runs, 2))
    trained = [g for g in log["groups"] if g["steps"] > 0]
    assert trained and all(g["wall_s"] > 0 and g["pretrain_s"] > 0 and g["eval_s"] > 0 for g in trained)
    assert all(g["achieved_flops"] > 0 and 0 < g["frac_peak"] for g in trained)
    assert sum(g["runs"] for g in log["groups"]) == len(runs)
    assert campaign.missing(sec, shard) == runs  # nothing is in the ledger before unpack
    assert campaign.unpack([archive], profile="smoke") == {"04_dna": len(runs)}
    assert campaign.missing(sec, shard) == []
    (kept,) = shard_log.saved("smoke")  # the log is kept beside the ledger, with what was taken in
    assert kept["results"] == len(runs) and kept["archive"] == archive.name and kept["groups"] == log["groups"]
    assert shard_log.saved("full") == []
    assert "| 04_dna | 1/3 | cpu |" in shard_log.provenance_markdown("smoke")
    for spec in runs:
        assert "metrics" in load_record(ledger_path(spec, sec.data_checksum))
    # a second run of the shard finds every run in the ledger: an empty archive
    again = campaign.run_shard("04_dna", shard, tmp_path / "again", profile="smoke", device="cpu", progress=False)
    assert _entries(again) == []
    with tarfile.open(again) as tar:
        assert shard_log.read(tar)["groups"] == []
    # the engine reads the ledger: with an empty cache, the shard's runs are not trained again
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "empty-cache"))

    def no_training(group, options):
        raise AssertionError(f"{group[0].label()} was trained although the ledger holds it")

    from r2mae_core.runs import execute
    results = execute(runs, no_training, data_checksum=sec.data_checksum, progress=False)
    assert all(r is not None for r in results)


def test_a_group_that_fails_on_the_gpu_is_logged_and_the_shard_goes_on(ledger, tmp_path, monkeypatch, capsys):
    """The first group raises (as a CUDA error would): the others still train and come back, the log records
    the failure, ``run`` exits 1 naming the group, and unpack takes in what finished; a dry run stops there."""
    sec = campaign.section("04_dna", "smoke")
    runs = campaign.shard_runs(sec, (1, 3))
    chunks = groups(runs, 2)
    work, every_group = campaign._work(sec), {"fails": False}

    def fails_first(group, options):
        if group[0] == chunks[0][0] or every_group["fails"]:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return work(group, options)

    monkeypatch.setattr(campaign, "_work", lambda sec: fails_first)
    argv = ["run", "04_dna", "1/3", str(tmp_path / "out"), "--profile", "smoke", "--device", "cpu", "--group-size", "2"]
    assert campaign.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"campaign: group {chunks[0][0].label()} ({len(chunks[0])} runs) failed: "
                   "RuntimeError('CUDA error: an illegal memory access was encountered')"]
    archive = tmp_path / "out" / "04_dna-1of3.tar"
    assert len(_entries(archive)) == len(runs) - len(chunks[0]) > 0
    (failed,) = campaign.failed_groups(archive)
    assert failed["runs"] == len(chunks[0]) and "illegal memory access" in failed["error"]
    assert campaign.unpack([archive], profile="smoke") == {"04_dna": len(runs) - len(chunks[0])}
    assert campaign.missing(sec, (1, 3)) == chunks[0]
    assert f"| {len(chunks) - 1} (1 failed) | {len(runs) - len(chunks[0])} |" in shard_log.provenance_markdown("smoke")
    every_group["fails"] = True
    with pytest.raises(RuntimeError, match="illegal memory access"):
        campaign.run_shard("04_dna", (1, 3), tmp_path / "dry", profile="smoke", dry_run=True, group_size=2,
                           progress=False)


def test_an_image_shard_brings_back_the_analyses_and_the_notebook_then_replays(ledger, tmp_path, monkeypatch):
    """06 at smoke in one shard: its records carry the analyses the notebook draws (components, segmentations,
    Table 1 probes), so after unpack the whole study runs from the ledger with training forbidden."""
    from r2mae_core.experiments import spectral_clustering

    archive = campaign.run_shard("06_spectral_clustering", (0, 1), tmp_path / "out", profile="smoke",
                                 device="cpu", group_size=4, progress=False)
    sec = campaign.section("06_spectral_clustering", "smoke")
    assert len(_entries(archive)) == len(campaign.shard_runs(sec, (0, 1))) > 0
    assert campaign.unpack([archive], profile="smoke") == {"06_spectral_clustering": len(_entries(archive))}
    assert campaign.missing(sec) == []
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("R2MAE_REPLAY", "1")
    out = spectral_clustering.run(sec.config, progress=False)
    assert len(out["components"]) and len(out["segmentation"]) and "partial_ft_test" in out["probes"]
    assert set(out["examples"]["labels"]) >= {("MAE", k) for k in sec.config.seg_ks}


@pytest.mark.parametrize("notebook", list(campaign.SECTIONS))
def test_a_dry_run_takes_every_code_path_of_the_full_plan_and_never_enters_the_ledger(ledger, tmp_path, notebook):
    """One run per code path of the full plan on the CPU (two steps, small data; every run of the plan:
    ``campaign run NB 0/1 OUT --dry-run``), rehearsed as the GPU machine runs it (a new process with only the
    carried data and without the packages the GPU image lacks); its results are not runs of the full plan, so
    unpack refuses them."""
    sec = campaign.section(notebook, "full", dry_run=True)
    paths = campaign.code_paths(sec.plan)
    kinds = {(s.family, s.size, s.method.kind, s.method.uniformity_weight > 0,
              tuple(sorted(s.evaluation.get("analyses", {})))) for s in sec.plan}
    assert {(s.family, s.size, s.method.kind, s.method.uniformity_weight > 0,
             tuple(sorted(s.evaluation.get("analyses", {})))) for s in paths} == kinds
    archive = campaign.rehearse(notebook, (0, 1), tmp_path / "out", paths=True, group_size=4)
    assert len(_entries(archive)) == len(paths) > 0
    with pytest.raises(ValueError, match=f"is not a run of {notebook}'s full plan here"):
        campaign.unpack([archive])
    assert not ledger.exists() or not any(ledger.rglob("*.npz"))
    with pytest.raises(ValueError, match="paths=True is not allowed without dry_run"):
        campaign.run_shard(notebook, (0, 1), tmp_path / "out", paths=True)


def test_pack_names_what_a_gpu_command_needs(ledger):
    packed = campaign.pack("06_spectral_clustering", (1, 4))
    assert packed["carry"] == ["data/fashion_mnist"] and 0 < packed["mib"] <= 64
    assert packed["command"].endswith("campaign run 06_spectral_clustering 1/4 $OUT --compile")
    assert packed["runs"] > 0 and 0 < packed["timeout_s"] <= campaign.SHARD_TIMEOUT_S


def test_pack_caps_a_long_shard_at_the_shard_time_limit(ledger):
    packed = campaign.pack("02_vision", (0, 2))
    assert 1.5 * packed["estimate_s"] > campaign.SHARD_TIMEOUT_S
    assert packed["timeout_s"] == campaign.SHARD_TIMEOUT_S <= 540


def test_next_names_the_first_shard_with_missing_runs(ledger):
    notebook, shard, left = campaign.next_shard()
    first = next(iter(campaign.SECTIONS))
    assert notebook == first and shard == (0, campaign.SECTIONS[first]["shards"]) and left > 0


@pytest.mark.parametrize("argv, match", [
    (["run", "01_linear_theory", "0/2", "OUT"], "notebook='01_linear_theory' is not allowed"),
    (["run", "04_dna", "3/2", "OUT"], "3/2"),
    (["unpack", "notes.tar"], "archive 'notes.tar' is not allowed"),
    (["run", "04_dna", "0/1", "OUT", "--device", "cuda"], "device='cuda' is not allowed here"),
])
def test_bad_input_is_one_line_and_exit_2(ledger, tmp_path, capsys, argv, match):
    argv = [str(tmp_path / a) if a in ("OUT", "notes.tar") else a for a in argv]
    assert campaign.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("campaign: ") and "\n" not in err and match in err


def test_a_result_made_from_other_data_is_refused(ledger, tmp_path):
    archive = campaign.run_shard("04_dna", (0, 4), tmp_path / "out", profile="smoke", device="cpu",
                                 progress=False)
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".npz"))
        path = tmp_path / "entry.npz"
        path.write_bytes(tar.extractfile(member).read())
        others = [m for m in tar.getmembers() if m.name != member.name]
        kept = {m.name: tar.extractfile(m).read() for m in others}
    result = load_record(path)
    result["data_digest"] = "0" * 24  # as if the GPU side had built another corpus
    save_record(path, result)
    forged = tmp_path / "forged" / archive.name
    forged.parent.mkdir()
    with tarfile.open(forged, "w") as tar:
        tar.add(path, arcname=member.name)
        for name, data in kept.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ValueError, match="was made from other data"):
        campaign.unpack([forged], profile="smoke")
    assert not ledger.exists() or not any(ledger.rglob("*.npz")) and not any(ledger.rglob("*.json"))


def test_an_append_cut_off_midway_leaves_the_archive_as_it_was(tmp_path, monkeypatch):
    """A command killed while writing a group (here: the second entry raises) leaves the archive of the previous
    write, readable, and no partial file beside it."""
    archive = tmp_path / "04_dna-0of1.tar"
    campaign.append_entries(archive, [("a.json", b"{}")])
    before = archive.read_bytes()
    real = tarfile.TarFile.addfile
    calls = []

    def killed_midway(self, info, fileobj=None):
        calls.append(info.name)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(self, info, fileobj)

    monkeypatch.setattr(tarfile.TarFile, "addfile", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        campaign.append_entries(archive, [("b.npz", b"x" * 10000), ("b.json", b"{}")])
    assert archive.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [archive.name]
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["a.json"]


def test_an_archive_whose_log_is_of_another_format_is_refused_in_one_line(ledger, tmp_path, raises_one_line):
    archive = campaign.run_shard("04_dna", (0, 4), tmp_path / "out", profile="smoke", device="cpu",
                                 progress=False)
    with tarfile.open(archive) as tar:
        log = shard_log.read(tar)
    campaign.append_entries(archive, [shard_log.entry({**log, "format": shard_log.LOG_FORMAT + 1})])
    raises_one_line(lambda: campaign.unpack([archive], profile="smoke"),
                    [archive.name, shard_log.MEMBER, f"format={shard_log.LOG_FORMAT + 1}", "is not allowed"])
    assert not ledger.exists() or not any(ledger.rglob("*.npz"))


@pytest.mark.parametrize("notebook", list(campaign.SECTIONS))
def test_carry_lists_the_prepared_data_within_the_gpu_limits(notebook, monkeypatch):
    paths, total = campaign.carry(notebook)
    assert paths and all(p.startswith("data/") for p in paths)
    assert len(paths) <= campaign.CARRY_LIMIT_PATHS and 0 < total <= campaign.CARRY_LIMIT_BYTES
    monkeypatch.setattr(campaign, "CARRY_LIMIT_BYTES", total - 1)
    with pytest.raises(ValueError, match="a GPU command carries at most"):
        campaign.carry(notebook)


def test_carry_refuses_data_prepared_outside_the_checkout(tmp_path, monkeypatch, raises_one_line):
    import shutil

    from r2mae_core.data import registry

    sec = campaign.section("05_single_cell")
    outside = tmp_path / "data"
    for name in sec.module.data_names(sec.config):  # 05's prepared data is about 1 MiB
        shutil.copytree(registry.cache_dir(name), outside / registry.cache_dir(name).name)
    monkeypatch.setenv("R2MAE_DATA_DIR", str(outside))
    raises_one_line(lambda: campaign.carry("05_single_cell"),
                    ("R2MAE_DATA_DIR=", "is not allowed", "outside the checkout", "unset it"))


@pytest.mark.parametrize("notebook", list(campaign.SECTIONS))
def test_shards_are_whole_ensemble_groups_covering_the_plan_once(notebook):
    """A shard never splits an architecture's runs into small ensembles: every group of the engine (at the
    section's group size) lies in one shard, and the shards together hold each distinct run once."""
    from r2mae_core.runs import groups, shard_runs

    sec = campaign.section(notebook)
    n = campaign.SECTIONS[notebook]["shards"]
    parts = [campaign.shard_runs(sec, (i, n)) for i in range(n)]
    keys = [repr(s.identity()) for part in parts for s in part]
    assert sorted(keys) == sorted(repr(s.identity()) for s in shard_runs(sec.plan, (0, 1)))
    where = {repr(s.identity()): i for i, part in enumerate(parts) for s in part}
    for group in groups(shard_runs(sec.plan, (0, 1)), campaign.SECTIONS[notebook]["group_size"]):
        assert len({where[repr(s.identity())] for s in group}) == 1, group[0].label()
    assert parts == [campaign.shard_runs(sec, (i, n)) for i in range(n)]  # a fixed partition


def test_estimate_counts_flops_like_the_gpu_check_and_prints_each_shard(ledger):
    """The FLOPs of a ViT-S step (batch 256, ratio 0.75) agree with the H200 check's count of the same model
    (results/gpu_checks: 6.60e9; there the mask is passed as a boolean mask, here as visible indices, which
    skips the masked tokens' embedding: within 15%); each shard and the total get one line."""
    from r2mae_core import shard_time
    from r2mae_core.experiments.image_runs import image_spec
    from r2mae_core.runs import TrainConfig, fixed_method

    spec = image_spec("vit", "S", fixed_method(0.75), 0, TrainConfig(steps=10, batch_size=256),
                      overrides={"patch": 4})
    assert shard_time.step_flops(spec) == pytest.approx(6.60e9, rel=0.15)
    lines = campaign.estimate_lines("06_spectral_clustering")
    n = campaign.SECTIONS["06_spectral_clustering"]["shards"]
    assert len(lines) == n + 1 and lines[-1].startswith("06_spectral_clustering: 25 runs")
    assert "allowances" in lines[-1]


def test_single_cell_units_pretrain_there_and_are_scored_here(ledger, tmp_path, monkeypatch):
    """05 at smoke: the GPU's part of each unit (pretraining, embedding, reconstruction; no scanpy) comes back,
    unpack scores it here (annotation CV, leiden) and keeps embeddings only where the UMAP reads them; replaying
    the study from the ledger with training forbidden gives the tables of a run made here from scratch."""
    from r2mae_core.experiments import single_cell

    sec = campaign.section("05_single_cell", "smoke")
    assert all(s.family != "pca" for s in sec.plan) and len(sec.plan) < len(single_cell.plan(sec.config))
    archive = campaign.run_shard("05_single_cell", (0, 1), tmp_path / "out", profile="smoke", device="cpu",
                                 group_size=1, progress=False)  # one by one: the same numbers as here
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".npz"))
        (tmp_path / "entry.npz").write_bytes(tar.extractfile(member).read())
    shipped = load_record(tmp_path / "entry.npz")
    assert "annotation" not in shipped and "embedding" in shipped and shipped["data_digest"]
    assert campaign.unpack([archive], profile="smoke") == {"05_single_cell": len(sec.plan)}
    kept = [s for s in sec.plan if "embedding" in load_record(ledger_path(s, sec.data_checksum))]
    assert 0 < len(kept) < len(sec.plan)
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "replay"))
    monkeypatch.setenv("R2MAE_REPLAY", "1")
    replayed = single_cell.run(sec.config, progress=False)
    single_cell.umap_adata(sec.config, sec.config.datasets[0], sec.config.models[0], sec.config.umap_methods)
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "here"))
    monkeypatch.setenv("R2MAE_REPLAY", "0")
    monkeypatch.setenv("R2MAE_LEDGER_DIR", str(tmp_path / "no-ledger"))
    here = single_cell.run(sec.config, progress=False)
    for name in ("annotation", "clustering", "reconstruction", "loss"):
        assert replayed[name].equals(here[name]), name


def test_single_cell_units_trained_as_one_ensemble_match_the_units_one_by_one():
    """The GPU's ensemble of units (stacked gene models, one vmapped step) gives each unit's pretraining part as
    it is alone: losses to 1e-5, reconstruction and embeddings to 1e-3 (gene Transformer: the attention key
    bias has a zero gradient, so only rounding moves it, and AdamW scales that noise to a learning-rate step)."""
    from dataclasses import replace

    import numpy as np

    from r2mae_core.experiments import single_cell

    config = replace(campaign.section("05_single_cell", "smoke").config, models=("mlp", "transformer"))
    plan = single_cell.campaign_plan(config)
    for family in ("mlp", "transformer"):
        group = [s for s in plan if s.family == family and s.train is not None][:3]
        assert len({s.method.name for s in group}) > 1
        together = single_cell.pretrain_units(group)
        for spec, got in zip(group, together, strict=True):
            alone = single_cell.pretrain_unit(spec)
            assert np.abs(got["history"]["loss"].to_numpy() - alone["history"]["loss"].to_numpy()).max() < 1e-5
            assert np.abs(got["embedding"] - alone["embedding"]).max() < 1e-3, family
            assert np.allclose(got["reconstruction"]["mse"], alone["reconstruction"]["mse"], rtol=1e-3), family


#: The GPU budget the full profiles are sized to: one command per shard, at most 8 minutes each and 45 minutes
#: for 02-06 together on one H200 (estimated: r2mae_core.shard_time).
SHARD_BUDGET_S, CAMPAIGN_BUDGET_S = 8 * 60, 45 * 60


def test_the_full_profiles_fit_the_gpu_budget():
    """Every shard of every section's full profile is estimated at <= 8 min and 02-06 at <= 45 min in all (a
    full YAML grown past the budget fails here, before any GPU time is spent)."""
    from r2mae_core.shard_time import estimate

    total = 0.0
    for notebook, entry in campaign.SECTIONS.items():
        sec = campaign.section(notebook)
        for i in range(entry["shards"]):
            found = estimate(notebook, campaign.shard_runs(sec, (i, entry["shards"])), entry["group_size"])
            assert found.runs > 0, f"{notebook} shard {i} is empty"
            assert found.total <= SHARD_BUDGET_S, f"{notebook} {i}/{entry['shards']}: {found.total / 60:.1f} min"
            total += found.total
    assert total <= CAMPAIGN_BUDGET_S, f"02-06: {total / 60:.1f} min"


def test_token_runs_are_estimated_from_their_fine_tuning_steps():
    """A token run's evaluation estimate counts its fine-tuning steps (epochs × learning rates × batches of 32
    per task) at the single-model step time; the sweep's runs at the other size are not fine-tuned."""
    from r2mae_core import shard_time

    sec = campaign.section("03_language")
    config = sec.config
    main = next(s for s in sec.plan if s.size == config.main_size and s.train is not None)
    other = next(s for s in sec.plan if s.size != config.main_size)
    batches = -(-config.probe_train // 32) + -(-config.spam_train // 32)
    steps = config.finetune_epochs * len(config.finetune_lrs) * batches
    probes = 3 * shard_time.TOKEN_PROBE_S + shard_time.TOKEN_PASSES_S
    assert shard_time.eval_seconds("03_language", main) == pytest.approx(steps * shard_time.H200.floor_single_s
                                                                         + probes)
    assert other.evaluation["finetune_epochs"] == 0
    assert shard_time.eval_seconds("03_language", other) == pytest.approx(probes)
