"""DNA datasets: genomes (FASTA) and annotated genes (GenBank), cached 2-bit packed.

Encoding (everywhere): ``A C G T N -> 0 1 2 3 4`` as uint8 (:data:`BASES`). Any other IUPAC letter (R, Y,
K, M, S, W, ...) and any other symbol become N (4); their number is in the manifest's ``stats``. Lower case is
soft masking (repeats): it is kept as a separate boolean array, True = lower case in the source.

:class:`Genome` (``dm_chr2r``, ``hs_chrx``, ``pf_genome``, ``bacteria``, ``dm_promoters``): ``records`` maps a
record name to its codes; ``softmask`` maps the same names to boolean arrays, and is **empty** when the source
has no case information (all upper case, or all lower case as in ``pf_genome`` and ``dm_promoters``);
``metadata`` has one row per record (``record``, ``description``, ``length`` and, for ``bacteria``,
``species``, ``genus``, ``strain``, ``accession``; for ``dm_promoters``, ``transcript``, ``chrom``,
``strand``, ``region``).
Record keys: the FASTA id (first word of the header), or ``"<species>/<strain>/<accession>"`` for bacteria.

Cache (``.npz``): the records concatenated and packed 4 bases a byte (``packed``, ``total``, ``offsets``),
runs ``[start, end)`` of N (``n_runs``) and of lower case (``mask_runs``), record names and a JSON metadata
table, zlib-compressed: under 2 bits a base (human chrX, 70 Mb with 3.8 Mb of N -> 15 MiB).

``dm_genes``: a DataFrame, one row per gene (see :func:`parse_genbank`), with the sequence as codes and CDS
exons as 0-based half-open intervals in the record's own coordinates (ascending, whatever the strand);
``start``/``end`` place the record on the full chr2R of ``dm_chr2r`` (LOCUS names count from the tutorial's
2 Mb window: :data:`GENES_OFFSET`). Each CDS starts with ATG and stops *before* the stop codon.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["BASES", "Genome", "encode", "decode", "read_fasta", "parse_location", "parse_genbank",
           "pack_2bit", "unpack_2bit", "runs", "BUILDERS", "READERS"]

BASES = "ACGTN"
_CODE = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate("ACGT"):
    _CODE[ord(_b)] = _CODE[ord(_b.lower())] = _i
_LOWER = np.zeros(256, dtype=bool)
_LOWER[ord("a"):ord("z") + 1] = True
_AMBIGUOUS = np.ones(256, dtype=bool)  # neither ACGTN nor acgtn
_AMBIGUOUS[[ord(c) for c in "ACGTNacgtn"]] = False
_LETTERS = np.frombuffer(BASES.encode(), dtype=np.uint8)
# genes.gb LOCUS names ("chr2R_23932-26830") are 1-based inclusive in the tutorial's chr2R.2M-7M.fa window,
# which starts 2,000,000 bases into chr2R: all 586 sequences equal dm_chr2r[start + 2e6 : end + 2e6] exactly.
GENES_OFFSET = 2_000_000
_BACTERIA_GENUS = {"E.Coli": "Escherichia", "H.Pylori": "Helicobacter", "S.Aureus": "Staphylococcus",
                   "V.Cholerae": "Vibrio"}


@dataclass
class Genome:
    """DNA records as uint8 codes (``A C G T N -> 0..4``) with optional soft mask.

    Attributes
    ----------
    name : str
        Registry name.
    records : dict of str to numpy.ndarray
        uint8 codes of each record, shape ``(length,)`` (views into one buffer).
    softmask : dict of str to numpy.ndarray
        bool, True = lower case (soft-masked) in the source; empty when the source carries no case
        information.
    metadata : pandas.DataFrame
        One row per record, in file order; ``record`` is the key into ``records``.
    """

    name: str
    records: dict[str, np.ndarray]
    softmask: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def total_length(self) -> int:
        return int(sum(len(v) for v in self.records.values()))

    def sequence(self, record: str, start: int = 0, end: int | None = None) -> str:
        """Decoded ``record[start:end]`` as an upper-case string (soft mask not applied)."""
        return decode(self.records[record][start:end])

    def __repr__(self) -> str:
        return (f"Genome({self.name!r}, records={len(self.records)}, bases={self.total_length:,}, "
                f"softmask={'yes' if self.softmask else 'no'})")


def encode(seq: bytes | str) -> tuple[np.ndarray, np.ndarray, int]:
    """Encode a sequence.

    Returns
    -------
    codes : numpy.ndarray
        uint8, ``A C G T -> 0..3`` (either case), anything else -> 4 (N).
    softmask : numpy.ndarray
        bool, True where the source letter is lower case.
    n_ambiguous : int
        Number of symbols that were neither ACGTN nor acgtn (IUPAC codes etc.), now N.
    """
    raw = np.frombuffer(seq.encode("latin-1") if isinstance(seq, str) else seq, dtype=np.uint8)
    return _CODE[raw], _LOWER[raw], int(_AMBIGUOUS[raw].sum())


def decode(codes: np.ndarray) -> str:
    """Codes ``0..4`` back to an ``ACGTN`` string."""
    return _LETTERS[np.asarray(codes, dtype=np.uint8)].tobytes().decode("ascii")


def read_fasta(path: Path) -> list[tuple[str, bytes]]:
    """``(header, sequence bytes)`` of each record of a (gzipped) FASTA file; line breaks removed."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if not raw.startswith(b">"):
        raise ValueError(f"{path} is not FASTA (does not start with '>')")
    out = []
    for chunk in raw[1:].split(b"\n>"):
        header, _, body = chunk.partition(b"\n")
        out.append((header.decode("latin-1").strip(), body.translate(None, b"\r\n\t ")))
    return out


def runs(mask: np.ndarray) -> np.ndarray:
    """``(k, 2)`` int64 array of ``[start, end)`` of the True runs of a boolean array."""
    padded = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return edges.reshape(-1, 2).astype(np.int64)


def pack_2bit(codes: np.ndarray) -> np.ndarray:
    """Pack codes 4 to a byte (first base in the low bits); N (4) packs as 0 — keep its runs separately."""
    c = np.where(codes > 3, 0, codes).astype(np.uint8)
    c = np.concatenate([c, np.zeros(-len(c) % 4, dtype=np.uint8)]).reshape(-1, 4)
    return c[:, 0] | (c[:, 1] << 2) | (c[:, 2] << 4) | (c[:, 3] << 6)


def unpack_2bit(packed: np.ndarray, total: int) -> np.ndarray:
    """Inverse of :func:`pack_2bit` (without the N runs)."""
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8)
    return ((packed[:, None] >> shifts) & 3).reshape(-1)[:total]


def _save_genome(out: Path, names: list[str], seqs: list[bytes], meta: list[dict]) -> dict:
    """Encode and write records; returns stats for the manifest."""
    if len(set(names)) != len(names):
        raise ValueError("duplicate record names")
    encoded = [encode(s) for s in seqs]
    codes = np.concatenate([e[0] for e in encoded]) if encoded else np.zeros(0, np.uint8)
    mask = np.concatenate([e[1] for e in encoded]) if encoded else np.zeros(0, bool)
    has_mask = bool(mask.any() and not mask.all())
    offsets = np.concatenate([[0], np.cumsum([len(e[0]) for e in encoded])]).astype(np.int64)
    arrays = {"packed": pack_2bit(codes), "total": np.int64(len(codes)), "offsets": offsets,
              "n_runs": runs(codes == 4), "mask_runs": runs(mask) if has_mask else np.zeros((0, 2), np.int64),
              "has_softmask": np.bool_(has_mask), "names": np.array(names, dtype=str),
              "meta_json": np.array(json.dumps(meta))}
    with open(out, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return {"records": len(names), "bases": int(len(codes)), "n_bases": int((codes == 4).sum()),
            "ambiguous_as_n": int(sum(e[2] for e in encoded)),
            "softmasked": int(mask.sum()) if has_mask else 0}


def _load_genome(path: Path, name: str) -> Genome:
    with np.load(path, allow_pickle=False) as z:
        total = int(z["total"])
        codes = unpack_2bit(z["packed"], total)
        for start, end in z["n_runs"]:
            codes[start:end] = 4
        mask = None
        if bool(z["has_softmask"]):
            mask = np.zeros(total, dtype=bool)
            for start, end in z["mask_runs"]:
                mask[start:end] = True
        offsets, names = z["offsets"], [str(n) for n in z["names"]]
        meta = pd.DataFrame(json.loads(str(z["meta_json"])))
    records = {n: codes[offsets[i]:offsets[i + 1]] for i, n in enumerate(names)}
    softmask = {} if mask is None else {n: mask[offsets[i]:offsets[i + 1]] for i, n in enumerate(names)}
    return Genome(name, records, softmask, meta)


def _fasta_genome(out: Path, paths: list[Path], extra=None) -> dict:
    names, seqs, meta = [], [], []
    for path in paths:
        for header, seq in read_fasta(path):
            ident, _, desc = header.partition(" ")
            row = {"record": ident, "description": desc.strip(), "length": len(seq)}
            if extra is not None:
                row = extra(path, ident, row)
            names.append(row["record"])
            seqs.append(seq)
            meta.append(row)
    return _save_genome(out, names, seqs, meta)


def _bacteria_row(path: Path, ident: str, row: dict) -> dict:
    species, strain = path.parent.parent.name, path.name.removesuffix(".gz").removesuffix(".fasta")
    fields = ident.split("|")
    accession = fields[3] if len(fields) > 3 and fields[0] == "gi" else ident
    return {**row, "record": f"{species}/{strain}/{accession}", "species": species,
            "genus": _BACTERIA_GENUS.get(species, species.split(".")[0]), "strain": strain,
            "accession": accession}


_PROMOTER = re.compile(r"^(?P<tx>.+)_up_(?P<n>\d+)_(?P<chrom>[^_]+)_(?P<pos>-?\d+)_(?P<strand>[fr])$")


def _promoter_row(path: Path, ident: str, row: dict) -> dict:
    m = _PROMOTER.match(ident)
    if not m:
        return {**row, "transcript": ident, "chrom": "", "strand": "", "region": row["description"]}
    return {**row, "transcript": m["tx"], "chrom": m["chrom"], "strand": "+" if m["strand"] == "f" else "-",
            "region": row["description"]}


# ---------------------------------------------------------------------------------------------- GenBank
_INTERVAL = re.compile(r"<?(\d+)(?:\.\.>?(\d+))?")


def parse_location(location: str) -> tuple[str, list[tuple[int, int]]]:
    """Parse a GenBank feature location into a strand and 0-based half-open intervals.

    ``"join(1001..1387,1563..1839)"`` -> ``("+", [(1000, 1387), (1562, 1839)])``;
    ``"complement(join(351..622,674..782))"`` or ``"join(complement(351..622),complement(674..782))"`` ->
    ``("-", [(350, 622), (673, 782)])``. Partial markers ``<``/``>`` are ignored; a single base ``"7"`` is
    ``(6, 7)``. Intervals are sorted ascending whatever the strand. ``order()``, remote references and mixed
    strands raise ValueError.
    """
    body = re.sub(r"\s+", "", location)
    strand = "+"
    if body.startswith("complement(") and body.endswith(")"):
        strand, body = "-", body[len("complement("):-1]
    if body.startswith("join(") and body.endswith(")"):
        body = body[len("join("):-1]
    parts = body.split(",")
    inner = [p.startswith("complement(") and p.endswith(")") for p in parts]
    if any(inner):
        if not all(inner) or strand == "-":
            raise ValueError(f"mixed strands in GenBank location {location!r}")
        strand, parts = "-", [p[len("complement("):-1] for p in parts]
    intervals = []
    for part in parts:
        m = _INTERVAL.fullmatch(part)
        if not m:
            raise ValueError(f"unsupported GenBank location {location!r} (part {part!r})")
        start, end = int(m[1]) - 1, int(m[2]) if m[2] else int(m[1])
        if end <= start:
            raise ValueError(f"empty interval {part!r} in GenBank location {location!r}")
        intervals.append((start, end))
    return strand, sorted(intervals)


def parse_genbank(text: str) -> list[dict]:
    """Parse GenBank records with one CDS each (the AUGUSTUS training-gene format).

    Returns
    -------
    list of dict
        ``locus``, ``length`` (from the LOCUS line), ``gene_id`` (``/gene=``), ``strand``, ``exons`` (0-based
        half-open, ascending), ``sequence`` (bytes, as in ORIGIN, line numbers and spaces removed).
    """
    out = []
    for block in re.split(r"^//[ \t]*$", text, flags=re.M):
        if "LOCUS" not in block:
            continue
        head, _, origin = block.partition("\nORIGIN")
        locus_line = re.search(r"^LOCUS\s+(\S+)\s+(\d+)\s+bp", head, flags=re.M)
        if not locus_line:
            raise ValueError(f"GenBank record without a LOCUS line: {head[:60]!r}")
        cds = re.search(r"^ {5}CDS {13}(.+?)(?=^ {21}/|^ {5}\S|\Z)", head, flags=re.M | re.S)
        gene = re.search(r'/gene="([^"]*)"', head)
        if not cds:
            raise ValueError(f"GenBank record {locus_line[1]} has no CDS feature")
        strand, exons = parse_location(cds[1])
        seq = re.sub(rb"[\s0-9]", b"", origin.encode("ascii", errors="replace"))
        out.append({"locus": locus_line[1], "length": int(locus_line[2]), "gene_id": gene[1] if gene else "",
                    "strand": strand, "exons": exons, "sequence": seq})
    return out


def _build_dm_genes(sources: dict, out: Path) -> dict:
    genes = parse_genbank(Path(sources["genbank"]).read_text(encoding="latin-1"))
    split_of = {}
    for part in ("train", "test"):
        text = Path(sources[part]).read_text(encoding="latin-1")
        for locus in re.findall(r"^LOCUS\s+(\S+)", text, flags=re.M):
            if locus in split_of:
                raise ValueError(f"dm_genes: locus {locus} is in both genes.gb.train and genes.gb.test")
            split_of[locus] = part
    meta = []
    for g in genes:
        if len(g["sequence"]) != g["length"]:
            raise ValueError(f"dm_genes: {g['locus']} has {len(g['sequence'])} bases, "
                             f"LOCUS says {g['length']}")
        if g["exons"][-1][1] > g["length"]:
            raise ValueError(f"dm_genes: {g['locus']} has a CDS past its end")
        if g["locus"] not in split_of:
            raise ValueError(f"dm_genes: locus {g['locus']} is in neither the train nor the test file")
        m = re.match(r"^(.+)_(\d+)-(\d+)$", g["locus"])
        offset = GENES_OFFSET if m and m[1] == "chr2R" else 0
        meta.append({"gene_id": g["gene_id"], "locus": g["locus"], "chrom": m[1] if m else "",
                     "start": int(m[2]) - 1 + offset if m else -1, "end": int(m[3]) + offset if m else -1,
                     "length": g["length"],
                     "strand": g["strand"], "exons": g["exons"], "split": split_of[g["locus"]]})
    if len(split_of) != len(genes):
        raise ValueError(f"dm_genes: {len(split_of)} loci in train+test but {len(genes)} in genes.gb")
    stats = _save_genome(out, [g["locus"] for g in genes], [g["sequence"] for g in genes], meta)
    return {**stats, "genes": len(genes), "train": sum(m["split"] == "train" for m in meta)}


def _read_dm_genes(path: Path) -> pd.DataFrame:
    """One row per gene: gene_id, locus, chrom, start/end (0-based half-open on the full chr2R of
    ``dm_chr2r``: LOCUS coordinates + :data:`GENES_OFFSET`), length, strand, exons (list of (start, end),
    0-based half-open in the locus sequence, ascending), cds_length, split, sequence (uint8 codes, + strand
    of chr2R). The CDS starts with ATG (reverse complement for ``-``) and excludes the stop codon."""
    genome = _load_genome(path, "dm_genes")
    df = genome.metadata.copy()
    df["exons"] = [[(int(a), int(b)) for a, b in ex] for ex in df["exons"]]
    df["cds_length"] = [sum(b - a for a, b in ex) for ex in df["exons"]]
    df["sequence"] = [genome.records[locus] for locus in df["locus"]]
    return df


def _builder(extra=None):
    def build(sources: dict, out: Path) -> dict:
        paths = [v for v in sources.values()]
        return _fasta_genome(out, paths, extra)
    return build


def _reader(name: str):
    def read(path: Path) -> Genome:
        return _load_genome(path, name)
    return read


BUILDERS = {"dm_chr2r": _builder(), "hs_chrx": _builder(), "pf_genome": _builder(),
            "bacteria": _builder(_bacteria_row), "dm_promoters": _builder(_promoter_row),
            "dm_genes": _build_dm_genes}
READERS = {name: _reader(name) for name in ("dm_chr2r", "hs_chrx", "pf_genome", "bacteria", "dm_promoters")}
READERS["dm_genes"] = _read_dm_genes
