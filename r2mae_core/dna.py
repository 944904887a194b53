"""DNA for the 04_dna section: tokenisation, fixed-length windows and the three labelled tasks.

Tokenisation (:class:`DNATokenizer`): ids ``[PAD]=0 [CLS]=1 [SEP]=2 [MASK]=3 [UNK]=4`` (the language section's
four specials plus ``[UNK]``), then ``N=5``, then ``A C G T = 6..9``; with ``k > 1`` (non-overlapping k-mers, as
the Nucleotide Transformer) the 4**k k-mers follow in lexicographic order from id 10. ``k = 1`` is the single-
nucleotide scheme of Caduceus. Upper case is applied first (soft-masked lower case = repeats, whose fraction
each task records per window in ``softmask_frac``); every IUPAC ambiguity code (R, Y, K, M, S, W, B, D, H, V)
becomes N, as in :mod:`r2mae_core.data.dna`. A k-mer that contains an N is ``[UNK]``; a tail shorter than k is
spelled as single nucleotides (as the Nucleotide Transformer does), so any ACGT string round-trips exactly.
Ids ``>= first_random_id`` are the ones BERT corruption may draw as random replacements (never specials or N).

Tasks (each returns a :class:`Task`: a tidy table, the class balance and the test *sources* to keep out of
pretraining text, see :func:`pretraining_regions`):

* :func:`exon_intron_task` – windows lying wholly inside a CDS exon, an intron (gap between CDS exons) or the
  ~1 kb flank of the 586 AUGUSTUS fly genes; split **by gene** with the ready ``genes.gb.train`` /
  ``genes.gb.test`` split (486 / 100 genes); windows read 5'->3' on the gene's strand.
* :func:`promoter_task` – the TSS-proximal ``length`` bp of the dm3 2 kb upstream regions on chr2R (deduplicated
  by TSS) vs chr2R background windows of the same length, GC-matched by histogram bins, far from every TSS;
  split by contiguous chr2R blocks (whole blocks held out for test).
* :func:`species_task` – fragments of 200–500 bp labelled by species (= genus here), whole strains held out.

Conventions shared by the tasks. Strand: exon/intron windows and promoters read 5'->3' on the gene/transcript
strand; background windows and species fragments are put on a random strand; no reverse-complement
augmentation is applied here (a training loop may add it with :func:`reverse_complement`). N runs: a window
whose N fraction exceeds ``max_n_frac`` (default 0: no N at all in a labelled window) is dropped or redrawn.
Balance: exact (equal classes within each split) for every task; :meth:`Task.balance` reports it.
Every function takes an explicit seed / ``numpy.random.Generator`` and never touches global random state; the
same seed gives the same table, row for row.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._rng import numpy_generator
from .data.dna import Genome, decode
from .validation import check_int, check_number

__all__ = ["SPECIAL_TOKENS", "PAD_ID", "CLS_ID", "SEP_ID", "MASK_ID", "UNK_ID", "N_ID", "N_SPECIAL",
           "DNATokenizer", "clean_sequence", "reverse_complement", "softmask_fraction", "tokenize_windows",
           "Task", "class_balance", "exon_intron_task", "promoter_task", "species_task", "pretraining_regions",
           "tile_regions", "with_validation", "count_overlaps"]

SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")
PAD_ID, CLS_ID, SEP_ID, MASK_ID, UNK_ID = 0, 1, 2, 3, 4
N_SPECIAL = len(SPECIAL_TOKENS)
N_ID = N_SPECIAL  # 5: the N token (any IUPAC ambiguity code)
_IUPAC = "ACGTNRYKMSWBDHV"
_COMPLEMENT = str.maketrans("ACGTNRYKMSWBDHVacgtnrykmswbdhv", "TGCANYRMKSWVHDBtgcanyrmkswvhdb")
_CODE_COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)
_TO_UPPER_N = str.maketrans({c: "N" for c in "RYKMSWBDHVrykmswbdhv"} | {c: c.upper() for c in "acgtn"})


# ---------------------------------------------------------------------------------------------- sequences
def clean_sequence(seq: str) -> str:
    """Upper-case a DNA string and turn every IUPAC ambiguity code into N.

    Why: the models see only ``ACGTN``; soft masking (lower case) is metadata, not a token.

    Raises
    ------
    ValueError
        On a character that is not an IUPAC nucleotide letter (``ACGTNRYKMSWBDHV``, either case).
    """
    if not isinstance(seq, str):
        raise ValueError(f"seq={type(seq).__name__} is not allowed: use a str of IUPAC nucleotide letters")
    bad = set(seq.upper()) - set(_IUPAC)
    if bad:
        raise ValueError(f"seq contains {''.join(sorted(bad))[:10]!r}, which is not allowed: use IUPAC letters "
                         f"{_IUPAC} (either case)")
    return seq.translate(_TO_UPPER_N)


def reverse_complement(seq: str | np.ndarray) -> str | np.ndarray:
    """Reverse complement of a DNA string (case and IUPAC codes kept) or of a ``0..4`` code array.

    An involution: ``reverse_complement(reverse_complement(s)) == s``. Used to read windows on the minus strand
    of a gene and to put background/fragments on a random strand.
    """
    if isinstance(seq, str):
        clean_sequence(seq)  # validates the alphabet
        return seq.translate(_COMPLEMENT)[::-1]
    codes = np.asarray(seq)
    if codes.ndim != 1 or (codes.size and (codes.min() < 0 or codes.max() > 4)):
        raise ValueError("seq is not allowed: use a str or a 1-D array of codes 0..4 (A C G T N)")
    return _CODE_COMPLEMENT[codes.astype(np.intp)][::-1]


def softmask_fraction(seq: str) -> float:
    """Fraction of lower-case (soft-masked, i.e. repeat) letters in a string; nan for an empty string."""
    return float(np.mean([c.islower() for c in seq])) if seq else float("nan")


@dataclass(frozen=True)
class DNATokenizer:
    """Single-nucleotide (``k=1``) or non-overlapping k-mer (``k>1``) DNA tokenizer.

    Parameters
    ----------
    k : int
        k-mer size in [1, 8] (Nucleotide Transformer uses 6). ``k=1`` gives a 10-token vocabulary.

    Notes
    -----
    Vocabulary: 5 specials, ``N``, ``A C G T``, then (k > 1) the 4**k k-mers. A sequence of length L gives
    ``L // k`` k-mer tokens then ``L % k`` single nucleotides. A k-mer containing N (or any IUPAC code) is
    ``[UNK]`` and decodes to k ``N``; a single N is the ``N`` token.
    """

    k: int = 1
    vocab: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_int("k", self.k, 1, 8)
        kmers = ["".join(p) for p in itertools.product("ACGT", repeat=self.k)] if self.k > 1 else []
        object.__setattr__(self, "vocab", SPECIAL_TOKENS + ("N", "A", "C", "G", "T") + tuple(kmers))

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def first_random_id(self) -> int:
        """Lowest id a BERT random replacement may use (skips specials and N; = ``random_token_low``)."""
        return N_ID + 1 if self.k == 1 else N_ID + 5

    def n_tokens(self, length: int) -> int:
        """Number of tokens (without specials) for a sequence of ``length`` bases."""
        return length // self.k + length % self.k

    def encode(self, seq: str | np.ndarray) -> np.ndarray:
        """Token ids (int64, no specials) of a DNA string or of a ``0..4`` code array."""
        if isinstance(seq, str):
            codes = np.frombuffer(clean_sequence(seq).encode("ascii"), dtype=np.uint8)
            codes = np.searchsorted(np.frombuffer(b"ACGNT", np.uint8), codes)  # A C G N T -> 0 1 2 3 4
            codes = np.array([0, 1, 2, 4, 3], dtype=np.int64)[codes]  # -> A C G T N = 0..4
        else:
            codes = np.asarray(seq).astype(np.int64)
            if codes.ndim != 1 or (codes.size and (codes.min() < 0 or codes.max() > 4)):
                raise ValueError("seq is not allowed: use a str or a 1-D array of codes 0..4 (A C G T N)")
        single = np.where(codes == 4, N_ID, codes + N_ID + 1)
        if self.k == 1:
            return single
        n_full = len(codes) // self.k
        block = codes[:n_full * self.k].reshape(n_full, self.k)
        value = (block.clip(max=3) * (4 ** np.arange(self.k - 1, -1, -1))).sum(axis=1)
        kmer_ids = np.where((block == 4).any(axis=1), UNK_ID, value + N_ID + 5)
        return np.concatenate([kmer_ids, single[n_full * self.k:]]).astype(np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        """Inverse of :meth:`encode`; specials other than ``[UNK]`` are dropped, ``[UNK]`` gives k ``N``."""
        out = []
        for i in np.asarray(list(ids), dtype=np.int64):
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} is not allowed: use ids in [0, {self.vocab_size})")
            if i == UNK_ID:
                out.append("N" * self.k)
            elif i >= N_ID:
                out.append(self.vocab[i])
        return "".join(out)


def tokenize_windows(seqs: Sequence[str], tokenizer: DNATokenizer, seq_len: int, *, add_cls: bool = True,
                     add_sep: bool = False) -> dict[str, np.ndarray]:
    """Fixed-length id matrix with an attention mask for a list of DNA windows.

    Layout per row: ``[CLS]? t_1 … t_m [SEP]? [PAD] …`` of exactly ``seq_len`` ids; tokens beyond the room
    left by the specials are cut (``n_cut`` counts the cut rows).

    Returns
    -------
    dict
        ``input_ids`` (N, seq_len) int64; ``attention_mask`` (N, seq_len) bool, True = real token (specials
        included), as in :mod:`r2mae_core.text`; ``n_cut`` int.
    """
    room = check_int("seq_len", seq_len, 1 + int(add_cls) + int(add_sep)) - int(add_cls) - int(add_sep)
    ids = np.full((len(seqs), seq_len), PAD_ID, dtype=np.int64)
    n_cut = 0
    for r, seq in enumerate(seqs):
        toks = tokenizer.encode(seq)
        n_cut += len(toks) > room
        row = ([CLS_ID] if add_cls else []) + toks[:room].tolist() + ([SEP_ID] if add_sep else [])
        ids[r, :len(row)] = row
    return {"input_ids": ids, "attention_mask": ids != PAD_ID, "n_cut": int(n_cut)}


# ---------------------------------------------------------------------------------------------- tasks
@dataclass
class Task:
    """A labelled DNA task.

    Attributes
    ----------
    name : str
    table : pandas.DataFrame
        One row per window: ``sequence`` (upper-case ACGTN, read 5'->3' on ``strand``), ``label`` (str),
        ``y`` (int code, order of ``classes``), ``split`` (train/test), ``group`` (the unit of the split: gene,
        block or strain), ``record``/``start``/``end`` (0-based half-open on the source genome's + strand, the
        coordinates :func:`pretraining_regions` uses), ``strand``, ``gc``, ``n_frac``, ``softmask_frac`` (nan
        when the source has no case information).
    classes : tuple of str
    test_sources : pandas.DataFrame
        ``record, start, end``: whole test sources (genes, blocks, strains) to keep out of pretraining text.
    params : dict
        The arguments that built the task.
    """

    name: str
    table: pd.DataFrame
    classes: tuple[str, ...]
    test_sources: pd.DataFrame
    params: dict

    @property
    def balance(self) -> pd.DataFrame:
        return class_balance(self.table)


def class_balance(table: pd.DataFrame) -> pd.DataFrame:
    """Counts and within-split fractions of each label: columns ``split, label, n, fraction``."""
    counts = table.groupby(["split", "label"]).size().rename("n").reset_index()
    counts["fraction"] = counts["n"] / counts.groupby("split")["n"].transform("sum")
    return counts


class _Track:
    """Prefix sums over one record for O(1) GC / N / soft-mask fractions of any window."""

    def __init__(self, codes: np.ndarray, softmask: np.ndarray | None):
        self.codes = codes

        def prefix(flags: np.ndarray) -> np.ndarray:  # in-place int32 cumsum: fast; records are < 2**31 bp
            out = np.zeros(len(flags) + 1, dtype=np.int32)
            out[1:] = flags
            return np.cumsum(out, out=out)

        self.gc = prefix((codes == 1) | (codes == 2))
        self.n = prefix(codes == 4)
        self.sm = None if softmask is None else prefix(np.asarray(softmask, dtype=bool))

    def stats(self, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        length = (end - start).astype(float)
        n = self.n[end] - self.n[start]
        with np.errstate(invalid="ignore", divide="ignore"):
            gc = (self.gc[end] - self.gc[start]) / (length - n)
        sm = np.full(len(start), np.nan) if self.sm is None else (self.sm[end] - self.sm[start]) / length
        return gc, n / length, sm


def _rows(track: _Track, record: str, start, end, strand, label: str, *, split, group) -> dict[str, np.ndarray]:
    """Columns (numpy arrays, one entry per window) of a task table; plain dicts avoid per-gene DataFrames."""
    start, end = np.asarray(start, dtype=np.int64), np.asarray(end, dtype=np.int64)
    gc, n_frac, sm = track.stats(start, end)
    seqs = []
    strand = np.broadcast_to(np.asarray(strand, dtype=object), start.shape)
    for a, b, s in zip(start.tolist(), end.tolist(), strand, strict=True):
        codes = track.codes[a:b]
        seqs.append(decode(reverse_complement(codes) if s == "-" else codes))
    full = {"label": label, "split": split, "group": group, "record": record}
    cols = {k: np.broadcast_to(np.asarray(v, dtype=object), start.shape) for k, v in full.items()}
    return {"sequence": np.array(seqs, dtype=object), **cols, "start": start, "end": end, "strand": strand,
            "gc": gc, "n_frac": n_frac, "softmask_frac": sm}


def _select(part: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[keep] for k, v in part.items()}


def _finish(name: str, parts: list[pd.DataFrame], classes: tuple[str, ...], test_sources: pd.DataFrame,
            params: dict, max_n_frac: float) -> Task:
    cols = ["sequence", "label", "y", "split", "group", "record", "start", "end", "strand", "gc", "n_frac",
            "softmask_frac"]
    table = pd.DataFrame({c: np.concatenate([np.asarray(p[c]) for p in parts]) for c in cols if c != "y"}
                         if parts else {c: [] for c in cols if c != "y"})
    table = table[table["n_frac"] <= max_n_frac]
    for c in ("start", "end"):
        table[c] = table[c].astype(np.int64)
    for c in ("gc", "n_frac", "softmask_frac"):
        table[c] = table[c].astype(float)
    for split in ("train", "test"):
        missing = set(classes) - set(table.loc[table["split"] == split, "label"])
        if missing:
            raise ValueError(f"{name} task has no {split} windows of {sorted(missing)} with {params}: use a smaller "
                             f"window/length or a larger max_n_frac")
    table["y"] = table["label"].map({c: i for i, c in enumerate(classes)}).astype(np.int64)
    order = {"train": 0, "val": 1, "test": 2}
    table = table.sort_values(["split", "y", "record", "start", "strand"], key=lambda c: c.map(order)
                              if c.name == "split" else c, kind="stable").reset_index(drop=True)
    return Task(name, table[cols], classes, test_sources.reset_index(drop=True), params)


def _balance(table: pd.DataFrame, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Downsample every class to the smallest class count, separately in each split."""
    keep = []
    for _, part in table.groupby("split", sort=True):
        n = part.groupby("label").size().min()
        for _, cls in part.groupby("label", sort=True):
            keep.append(cls.iloc[np.sort(rng.choice(len(cls), size=n, replace=False))])
    out = pd.concat(keep)
    return {c: out[c].to_numpy() for c in out.columns}


_GENE_CLASSES = ("exon", "intron", "flank")


def exon_intron_task(genes: pd.DataFrame, *, window: int = 100, classes: Sequence[str] = ("exon", "intron"),
                     max_per_gene: int = 10, max_n_frac: float = 0.0, chr2r: Genome | None = None,
                     balance: bool = True, seed: int | np.random.Generator = 0) -> Task:
    """Exon vs intron (vs flank) windows of the annotated fly genes, split by gene.

    Why: the canonical sequence-classification probe for DNA language models (cf. the Nucleotide Transformer
    splice/region tasks); whole genes are held out so no test window shares a gene with any training window.

    Each window of ``window`` bp lies wholly inside one region of a gene record: a CDS exon, an intron (gap
    between consecutive CDS exons) or the flank (record outside the CDS span: ~1 kb of 5'/3' sequence with
    UTRs and intergenic DNA — the closest to "intergenic" these annotations allow). Candidate windows are the
    non-overlapping tiles of each region; up to ``max_per_gene`` per gene and class are drawn at random, reads
    5'->3' on the gene's strand. Split: the ready AUGUSTUS ``genes.gb.train``/``genes.gb.test`` (486/100 genes,
    column ``split`` of ``dm_genes``). ``balance=True`` downsamples every class to the smallest one per split.

    Parameters
    ----------
    genes : DataFrame
        ``r2mae_core.data.load("dm_genes")``.
    window : int
        Window length in bp, >= 8.
    classes : sequence of str
        Two or three of ``exon``, ``intron``, ``flank``; ``y`` follows this order.
    max_per_gene : int
        Most windows per gene and class (>= 1): caps the weight of long genes.
    max_n_frac : float
        Windows with a larger fraction of N are dropped (in [0, 1]).
    chr2r : Genome, optional
        ``dm_chr2r``; when given, ``softmask_frac`` is read from its soft mask (the GenBank records carry none).
    balance : bool
    seed : int or numpy.random.Generator
    """
    rng = numpy_generator(seed)  # validates the seed first
    check_int("window", window, 8)
    check_int("max_per_gene", max_per_gene, 1)
    max_n_frac = check_number("max_n_frac", max_n_frac, low=0, high=1)
    classes = tuple(classes)
    if len(classes) < 2 or len(set(classes)) != len(classes) or not set(classes) <= set(_GENE_CLASSES):
        raise ValueError(f"classes={classes!r} is not allowed: use 2 or 3 distinct of {_GENE_CLASSES}")
    need = {"locus", "start", "end", "strand", "exons", "split", "sequence"}
    if not isinstance(genes, pd.DataFrame) or not need <= set(genes.columns):
        raise ValueError("genes is not allowed: use the DataFrame of r2mae_core.data.load('dm_genes')")
    parts = []
    for g in genes.sort_values("start", kind="stable").itertuples(index=False):
        exons = list(g.exons)
        regions = {"exon": exons, "intron": [(a[1], b[0]) for a, b in itertools.pairwise(exons) if b[0] > a[1]],
                   "flank": [(0, exons[0][0]), (exons[-1][1], len(g.sequence))]}
        if chr2r is not None:
            sm = chr2r.softmask["chr2R"][g.start:g.end] if chr2r.softmask else None
            track = _Track(chr2r.records["chr2R"][g.start:g.end], sm)
            if not np.array_equal(track.codes, g.sequence):
                raise ValueError(f"chr2r does not match gene {g.locus}: use r2mae_core.data.load('dm_chr2r')")
        else:
            track = _Track(np.asarray(g.sequence), None)
        for label in classes:
            starts = np.concatenate([np.arange(a, b - window + 1, window) for a, b in regions[label]]
                                    or [np.zeros(0, np.int64)]).astype(np.int64)
            if len(starts) > max_per_gene:
                starts = np.sort(rng.choice(starts, size=max_per_gene, replace=False))
            if len(starts):
                part = _rows(track, "chr2R", starts, starts + window, g.strand, label, split=g.split, group=g.locus)
                part["start"] += g.start  # locus -> chr2R coordinates
                part["end"] += g.start
                parts.append(part)
    task = _finish("exon_intron", parts, classes, pd.DataFrame(columns=["record", "start", "end"]),
                   {"window": window, "classes": classes, "max_per_gene": max_per_gene, "max_n_frac": max_n_frac,
                    "balance": balance}, max_n_frac)
    if balance:
        task.table = _finish("exon_intron", [_balance(task.table, rng)], classes, task.test_sources, {},
                             max_n_frac).table
    test = genes[genes["split"] == "test"]
    task.test_sources = pd.DataFrame({"record": "chr2R", "start": test["start"].to_numpy(np.int64),
                                      "end": test["end"].to_numpy(np.int64)}).sort_values("start",
                                                                                          ignore_index=True)
    return task


def _near_prefix(tss: np.ndarray, exclusion: int, n: int) -> np.ndarray:
    """Prefix counts (length ``n + 1``) of the positions within ``exclusion`` bp of a TSS: a window
    ``[s, e)`` keeps that distance from every TSS iff ``near[e] - near[s] == 0`` (difference array → coverage →
    prefix sum)."""
    cover = np.zeros(n + 1, dtype=np.int32)
    cover += np.bincount(np.clip(tss - exclusion, 0, n), minlength=n + 1).astype(np.int32)
    cover -= np.bincount(np.clip(tss + exclusion, 0, n), minlength=n + 1).astype(np.int32)
    np.cumsum(cover, out=cover)
    near = np.zeros(n + 1, dtype=np.int32)
    near[1:] = cover[:-1] > 0
    np.cumsum(near, out=near)
    return near


def _draw_background(rng: np.random.Generator, track: _Track, blocks: np.ndarray, quota: np.ndarray, stratum,
                     near: np.ndarray, *, n_draw: int, length: int, block_size: int,
                     max_n_frac: float) -> dict[int, list[tuple[int, int]]]:
    """Background window starts per stratum for :func:`promoter_task`: up to 50 rounds of ``n_draw`` uniform
    candidates in ``blocks`` (distinct, clean, away from every TSS) fill each stratum's ``quota``; a shortfall is
    filled from spare candidates of the same soft-mask class, nearest GC bin. Returns ``{stratum: [(start,
    stratum), ...]}``."""
    n_strata, n = len(quota), len(near) - 1
    chosen: dict[int, list[tuple[int, int]]] = {k: [] for k in range(n_strata)}
    spare: list[tuple[int, int]] = []
    used: set[int] = set()
    for _ in range(50):
        if all(len(chosen[k]) >= quota[k] for k in range(n_strata)):
            break
        s = rng.choice(blocks, size=n_draw) * block_size + rng.integers(0, block_size - length + 1, size=n_draw)
        s = s[s + length <= n]
        e = s + length
        gc, nf, sm = track.stats(s, e)
        ok = (nf <= max_n_frac) & (near[e] - near[s] == 0) & np.isfinite(gc)
        for a, k in zip(s[ok].tolist(), stratum(gc[ok], sm[ok]).tolist(), strict=True):
            if a not in used:
                used.add(a)
                (chosen[k] if len(chosen[k]) < quota[k] else spare).append((a, k))
    for k in range(n_strata):  # shortfall: spare candidates of the same soft-mask class, nearest GC bin
        short = quota[k] - len(chosen[k])
        if short > 0 and spare:
            spare.sort(key=lambda t, k=k: (t[1] % 3 != k % 3, abs(t[1] // 3 - k // 3), t[0]))
            chosen[k] += spare[:short]
            spare = spare[short:]
    return chosen


def promoter_task(promoters: Genome, chr2r: Genome, *, length: int = 200, test_fraction: float = 0.2,
                  block_size: int = 1_000_000, exclusion: int = 2_000, gc_bins: int = 20,
                  match_softmask: bool = True, max_n_frac: float = 0.0, seed: int | np.random.Generator = 0) -> Task:
    """Promoter (TSS-proximal upstream bp) vs GC-matched chr2R background windows of the same length.

    Why: a promoter-detection probe in the spirit of the Nucleotide Transformer benchmark, built from what is
    offline: dm3 2 kb upstream regions (``dm_promoters``) and the soft-masked chr2R (``dm_chr2r``).

    Positives: the ``length`` bp just upstream of each chr2R TSS (the last bases of each upstream record,
    read from chr2R itself so that the soft mask is known), one per distinct (strand, TSS) — alternative
    transcripts sharing a TSS would duplicate sequences. Only chr2R promoters are used, so both classes come
    from the same chromosome (and from the same pretraining text: no seen/unseen shortcut).
    Split: chr2R is cut into ``block_size`` blocks; ``round(test_fraction * n_blocks)`` (>= 1) blocks, drawn at
    random, are test; a window belongs to the block holding it and windows crossing a block edge are dropped.
    Background: windows anywhere in the same split's blocks, on a random strand, not within ``exclusion`` bp of
    any chr2R TSS of the file (all transcripts). Matching: positives are binned by GC (``gc_bins`` equal bins
    on [0, 1]) and, with ``match_softmask``, by soft-masked fraction (none, <= 1/2, > 1/2: unmatched, the
    background holds several times more repeat sequence than promoters do, a shortcut); distinct background
    candidates, drawn uniformly, fill each stratum with as many windows as it has positives (up to 50 rounds of
    20 x n candidates); a shortfall is filled from the same soft-mask class, nearest GC bin. One background
    window per promoter in each split (1:1). GC bins use ``floor(gc * gc_bins + 1e-9)`` so that k/length
    values on a bin edge are binned exactly.

    Parameters
    ----------
    promoters, chr2r : Genome
        ``r2mae_core.data.load("dm_promoters")`` and ``load("dm_chr2r")``.
    length : int
        Window length in bp, in [8, 2000].
    test_fraction : float
        Fraction of blocks held out, in (0, 1).
    block_size : int
        Block length in bp (>= 10 * length).
    exclusion : int
        Background windows keep this distance (bp, >= 0) from every TSS.
    gc_bins : int
        Number of GC bins (>= 1; 1 = no GC matching).
    match_softmask : bool
        Also match the soft-masked (repeat) fraction.
    max_n_frac : float
    seed : int or numpy.random.Generator
    """
    rng = numpy_generator(seed)  # validates the seed first
    check_int("length", length, 8, 2000)
    test_fraction = check_number("test_fraction", test_fraction, low=0, high=1, high_open=True)
    if test_fraction == 0:
        raise ValueError("test_fraction=0 is not allowed: use a number in (0, 1)")
    check_int("block_size", block_size, 10 * length)
    check_int("exclusion", exclusion, 0)
    check_int("gc_bins", gc_bins, 1)
    max_n_frac = check_number("max_n_frac", max_n_frac, low=0, high=1)
    if "chr2R" not in chr2r.records or "chrom" not in promoters.metadata:
        raise ValueError("promoters/chr2r are not allowed: use load('dm_promoters') and load('dm_chr2r')")
    codes = chr2r.records["chr2R"]
    track = _Track(codes, chr2r.softmask.get("chr2R") if chr2r.softmask else None)
    meta = promoters.metadata[promoters.metadata["chrom"] == "chr2R"]
    bounds = meta["region"].str.split(":").str[1].str.split("-", expand=True).astype(np.int64)
    lo, hi = bounds[0].to_numpy() - 1, bounds[1].to_numpy()  # 0-based half-open upstream region
    minus = (meta["strand"] == "-").to_numpy()
    tss = np.where(minus, lo - 1, hi)  # 0-based first transcribed base: just past the upstream region
    pos = pd.DataFrame({"start": np.where(minus, lo, hi - length), "strand": np.where(minus, "-", "+")})
    pos = pos.drop_duplicates(ignore_index=True)
    pos["end"] = pos["start"] + length
    pos = pos[(pos["start"] >= 0) & (pos["end"] <= len(codes))]
    n_blocks = -(-len(codes) // block_size)
    test_blocks = np.sort(rng.choice(n_blocks, size=max(1, round(test_fraction * n_blocks)), replace=False))
    is_test_block = np.isin(np.arange(n_blocks), test_blocks)
    pos = pos[pos["start"] // block_size == (pos["end"] - 1) // block_size]
    pos["split"] = np.where(is_test_block[pos["start"] // block_size], "test", "train")
    pos = pos[track.stats(pos["start"].to_numpy(), pos["end"].to_numpy())[1] <= max_n_frac]
    near = _near_prefix(tss, exclusion, len(codes))
    match_sm = match_softmask and track.sm is not None

    def stratum(gc: np.ndarray, sm: np.ndarray) -> np.ndarray:
        """GC bin, times 3 soft-mask classes (none, <= half, > half) when matching the soft mask."""
        g = np.clip(np.floor(np.nan_to_num(gc) * gc_bins + 1e-9).astype(np.int64), 0, gc_bins - 1)  # k/n on edges
        return g * 3 + (np.digitize(sm, [1e-12, 0.5 + 1e-12]) if match_sm else 0)

    n_strata = 3 * gc_bins
    parts = []
    for split in ("train", "test"):
        p = pos[pos["split"] == split]
        parts.append(_rows(track, "chr2R", p["start"], p["end"], p["strand"], "promoter", split=split,
                           group=p["start"] // block_size))
        quota = np.bincount(stratum(parts[-1]["gc"], parts[-1]["softmask_frac"]),
                            minlength=n_strata)
        blocks = np.flatnonzero(is_test_block == (split == "test"))
        chosen = _draw_background(rng, track, blocks, quota, stratum, near, n_draw=20 * max(1, len(p)),
                                  length=length, block_size=block_size, max_n_frac=max_n_frac)
        starts = np.array(sorted(a for v in chosen.values() for a, _ in v), dtype=np.int64)
        strands = np.where(rng.random(len(starts)) < 0.5, "-", "+")
        parts.append(_rows(track, "chr2R", starts, starts + length, strands, "background", split=split,
                           group=starts // block_size))
    test_sources = pd.DataFrame({"record": "chr2R", "start": test_blocks * block_size,
                                 "end": np.minimum((test_blocks + 1) * block_size, len(codes))})
    return _finish("promoter", parts, ("background", "promoter"), test_sources,
                   {"length": length, "test_fraction": test_fraction, "block_size": block_size,
                    "exclusion": exclusion, "gc_bins": gc_bins, "match_softmask": match_sm,
                    "max_n_frac": max_n_frac}, max_n_frac)


def species_task(genome: Genome, *, min_length: int = 200, max_length: int = 500, n_train: int = 1000,
                 n_test: int = 250, n_test_groups: int = 1, label: str = "species", group: str = "strain",
                 max_n_frac: float = 0.0, seed: int | np.random.Generator = 0) -> Task:
    """Species (or genus) of origin of short fragments, whole strains (or chromosomes) held out for test.

    Why: a taxonomic-classification probe whose test set cannot be solved by memorising the pretraining text
    of the same strain; ``n_test_groups`` groups of every class (drawn at random) are test, the rest train.

    Fragments: length uniform in ``[min_length, max_length]``; the record is drawn with probability
    proportional to its length within the class and split, the start uniformly, the strand at random (no
    further reverse-complement augmentation); fragments above ``max_n_frac`` N are redrawn. Exactly
    ``n_train`` / ``n_test`` fragments per class (balanced). For ``bacteria`` the species and genus coincide
    (one species per genus), so ``label="genus"`` gives the same classes.

    Parameters
    ----------
    genome : Genome
        Records with ``metadata`` columns ``label`` and ``group`` (``load("bacteria")`` has species, genus,
        strain); another genome (e.g. ``pf_genome``) works after adding the columns, with
        ``group="record"`` to hold out whole chromosomes.
    min_length, max_length : int
        Fragment length bounds in bp, ``8 <= min_length <= max_length``.
    n_train, n_test : int
        Fragments per class in train and test (>= 1).
    n_test_groups : int
        Groups per class held out (>= 1, and each class needs at least one more group for train).
    label, group : str
        Metadata columns for the class and for the held-out unit.
    max_n_frac : float
    seed : int or numpy.random.Generator
    """
    rng = numpy_generator(seed)  # validates the seed first
    check_int("min_length", min_length, 8)
    check_int("max_length", max_length, min_length)
    check_int("n_train", n_train, 1)
    check_int("n_test", n_test, 1)
    check_int("n_test_groups", n_test_groups, 1)
    max_n_frac = check_number("max_n_frac", max_n_frac, low=0, high=1)
    meta = genome.metadata
    for name, col in (("label", label), ("group", group)):
        if col not in meta.columns:
            raise ValueError(f"{name}={col!r} is not allowed: use a metadata column of {list(meta.columns)}")
    classes = tuple(sorted(meta[label].unique()))
    parts, test_records = [], []
    for cls in classes:
        m = meta[meta[label] == cls]
        groups = sorted(m[group].unique())
        if len(groups) <= n_test_groups:
            raise ValueError(f"n_test_groups={n_test_groups} is not allowed: class {cls!r} has {len(groups)} "
                             f"groups, use fewer than that")
        test_groups = set(rng.choice(groups, size=n_test_groups, replace=False).tolist())
        test_records += m.loc[m[group].isin(test_groups), "record"].tolist()
        for split, n in (("train", n_train), ("test", n_test)):
            recs = m[m[group].isin(test_groups) == (split == "test")]
            lengths = recs["length"].to_numpy(dtype=float)
            if (lengths < max_length).any():
                raise ValueError(f"max_length={max_length} is not allowed: record(s) of {cls!r} are shorter")
            rows, tries = [], 0
            while sum(len(r["start"]) for r in rows) < n:
                tries += 1
                if tries > 100:
                    raise ValueError(f"max_n_frac={max_n_frac} is not allowed here: too few windows of {cls!r} "
                                     f"pass it, use a larger value")
                k = n - sum(len(r["start"]) for r in rows)
                which = rng.choice(len(recs), size=k, p=lengths / lengths.sum())
                size = rng.integers(min_length, max_length + 1, size=k)
                start = (rng.random(k) * (lengths[which] - size + 1)).astype(np.int64)
                strand = np.where(rng.random(k) < 0.5, "-", "+")
                for i in np.unique(which):
                    row = recs.iloc[i]
                    j = which == i
                    track = _Track(genome.records[row["record"]], None)
                    part = _rows(track, row["record"], start[j], start[j] + size[j], strand[j], cls, split=split,
                                 group=row[group])
                    rows.append(_select(part, part["n_frac"] <= max_n_frac))
            parts += rows
    test_sources = pd.DataFrame({"record": test_records, "start": 0,
                                 "end": [len(genome.records[r]) for r in test_records]})
    return _finish("species", parts, classes, test_sources,
                   {"min_length": min_length, "max_length": max_length, "n_train": n_train, "n_test": n_test,
                    "n_test_groups": n_test_groups, "label": label, "group": group, "max_n_frac": max_n_frac},
                   max_n_frac)


def with_validation(task: Task, fraction: float = 0.15, *, seed: int | np.random.Generator = 0,
                    unit: str = "group") -> Task:
    """A copy of ``task`` whose training rows of ``round(fraction * n_groups)`` (>= 1) groups become ``val``.

    Why: hyper-parameters (probe C, the best fixed mask ratio) are chosen on data that is neither trained on nor
    the test set, and held out by the task's own unit (gene, block, strain) so validation is as hard as test.
    Groups are drawn from all training groups whatever their labels; ``val`` is not rebalanced (see
    :meth:`Task.balance`). ``unit="row"`` instead moves ``round(fraction * n)`` training rows of every class
    (drawn at random) to ``val``: for tasks with too few training groups per class to hold one out (the species
    task: some species keep a single training strain), at the cost of a validation split that shares groups
    with training (the test split still does not).
    """
    rng = numpy_generator(seed)  # validates the seed first
    fraction = check_number("fraction", fraction, low=0, high=1, high_open=True)
    if fraction == 0:
        raise ValueError("fraction=0 is not allowed: use a number in (0, 1)")
    if unit not in ("group", "row"):
        raise ValueError(f"unit={unit!r} is not allowed: use 'group' or 'row'")
    table = task.table.copy()
    train = table["split"] == "train"
    if unit == "row":
        for label in task.classes:
            idx = np.flatnonzero((train & (table["label"] == label)).to_numpy())
            n_val = min(len(idx) - 1, max(1, round(fraction * len(idx))))
            if n_val >= 1:
                table.loc[table.index[np.sort(rng.choice(idx, size=n_val, replace=False))], "split"] = "val"
        order = {"train": 0, "val": 1, "test": 2}
        table = table.sort_values(["split", "y", "record", "start", "strand"], key=lambda c: c.map(order)
                                  if c.name == "split" else c, kind="stable").reset_index(drop=True)
        return Task(task.name, table, task.classes, task.test_sources,
                    {**task.params, "val_fraction": fraction, "val_unit": unit})
    groups = np.array(sorted(table.loc[train, "group"].unique(), key=str), dtype=object)
    if len(groups) < 2:
        raise ValueError(f"task {task.name!r} has {len(groups)} training group(s): need 2 or more for a val split")
    val = rng.choice(groups, size=min(len(groups) - 1, max(1, round(fraction * len(groups)))), replace=False)
    table.loc[train & table["group"].isin(set(val.tolist())), "split"] = "val"
    order = {"train": 0, "val": 1, "test": 2}
    table = table.sort_values(["split", "y", "record", "start", "strand"], key=lambda c: c.map(order)
                              if c.name == "split" else c, kind="stable").reset_index(drop=True)
    return Task(task.name, table, task.classes, task.test_sources, {**task.params, "val_fraction": fraction})


def pretraining_regions(genome: Genome, exclude: Iterable[Task | pd.DataFrame] = (), *, margin: int = 0,
                        min_length: int = 1, min_n_run: int = 50) -> pd.DataFrame:
    """Intervals of a genome usable as pretraining text: everything minus the tasks' test sources.

    Why: a test window must never be part of the text the encoder was pretrained on; removing the
    whole test *source* (test gene locus, test block, test strain) rather than just the windows also keeps out
    their neighbourhood. Runs of at least ``min_n_run`` N split the intervals (short N runs stay in the text as
    N tokens). Test sources on other records (another genome) are ignored.

    Parameters
    ----------
    genome : Genome
    exclude : iterable of Task or DataFrame
        Tasks (their ``test_sources``) or DataFrames with ``record, start, end``.
    margin : int
        Extra bp removed on each side of every excluded interval (>= 0).
    min_length : int
        Shorter remaining pieces are dropped (>= 1).
    min_n_run : int
        N runs at least this long are removed (>= 1).

    Returns
    -------
    DataFrame
        ``record, start, end, length``, sorted, non-overlapping, 0-based half-open.
    """
    check_int("margin", margin, 0)
    check_int("min_length", min_length, 1)
    check_int("min_n_run", min_n_run, 1)
    frames = []
    for item in exclude:
        df = item.test_sources if isinstance(item, Task) else item
        if not isinstance(df, pd.DataFrame) or not {"record", "start", "end"} <= set(df.columns):
            raise ValueError("exclude is not allowed: use Tasks or DataFrames with columns record, start, end")
        frames.append(df[["record", "start", "end"]])
    excl = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["record", "start", "end"])
    out = []
    for record, codes in genome.records.items():
        delta = np.zeros(len(codes) + 1, dtype=np.int64)
        for a, b in excl.loc[excl["record"] == record, ["start", "end"]].to_numpy(np.int64):
            delta[max(0, a - margin)] += 1
            delta[min(len(codes), b + margin)] -= 1
        removed = np.cumsum(delta)[:-1] > 0
        isn = np.concatenate([[False], codes == 4, [False]])
        edges = np.flatnonzero(isn[1:] != isn[:-1]).reshape(-1, 2)
        for a, b in edges[edges[:, 1] - edges[:, 0] >= min_n_run]:
            removed[a:b] = True
        pad = np.concatenate([[True], removed, [True]])
        kept = np.flatnonzero(pad[1:] != pad[:-1]).reshape(-1, 2)
        for a, b in kept:
            if b - a >= min_length:
                out.append((record, int(a), int(b), int(b - a)))
    return pd.DataFrame(out, columns=["record", "start", "end", "length"])


def tile_regions(genome: Genome, regions: pd.DataFrame, length: int, *, stride: int | None = None,
                 max_n_frac: float = 0.0) -> pd.DataFrame:
    """Fixed-length pretraining windows tiled over ``regions`` (e.g. from :func:`pretraining_regions`).

    Windows start every ``stride`` bp (default ``length``: non-overlapping) from each region's start and lie
    wholly inside it; windows with an N fraction above ``max_n_frac`` are dropped. Deterministic (no RNG):
    shuffling is the data loader's job.

    Returns
    -------
    DataFrame
        ``record, start, end, n_frac``.
    """
    check_int("length", length, 1)
    stride = check_int("stride", length if stride is None else stride, 1)
    max_n_frac = check_number("max_n_frac", max_n_frac, low=0, high=1)
    out = []
    for record, part in regions.groupby("record", sort=False):
        if record not in genome.records:
            raise ValueError(f"regions record={record!r} is not allowed: use records of genome {genome.name!r}")
        track = _Track(genome.records[record], None)
        for a, b in part[["start", "end"]].to_numpy(np.int64):
            starts = np.arange(a, b - length + 1, stride, dtype=np.int64)
            n_frac = track.stats(starts, starts + length)[1]
            ok = n_frac <= max_n_frac
            out.append(pd.DataFrame({"record": record, "start": starts[ok], "end": starts[ok] + length,
                                     "n_frac": n_frac[ok]}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=["record", "start", "end", "n_frac"])


def count_overlaps(windows: pd.DataFrame, intervals: pd.DataFrame) -> int:
    """Number of rows of ``windows`` overlapping any interval of ``intervals`` on the same record.

    Both tables have ``record``, ``start``, ``end`` (half-open ``[start, end)``). Per record the intervals are
    sorted by start and their running maximum end is taken (the reach of every interval starting at or before a
    point); a window ``[a, b)`` overlaps iff the last interval starting before ``b`` reaches beyond ``a``.
    ``O((n + m) log m)``; used to prove that no test window overlaps pretraining text or a test source.
    """
    n = 0
    for record, part in windows.groupby("record"):
        other = intervals[intervals["record"] == record].sort_values("start")
        if other.empty:
            continue
        s, e = other["start"].to_numpy(), np.maximum.accumulate(other["end"].to_numpy())  # merged reach
        idx = np.searchsorted(s, part["end"].to_numpy(), side="left") - 1  # last interval starting before end
        ok = idx >= 0
        n += int((e[idx[ok]] > part["start"].to_numpy()[ok]).sum())
    return n
