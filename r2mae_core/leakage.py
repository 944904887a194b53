"""Near-copy leakage between a test set and the sequences a model was trained on: canonical k-mer containment.

A test window that is a near-copy of a training (or pretraining) window — the same sequence, its reverse
complement, or either with a few substitutions — can be solved by memory rather than by what the representation
has learned, and inflates test scores. This module measures, for every query (test) window, the fraction of its
distinct canonical k-mers that occur anywhere in a reference collection (the training windows, the pretraining
text):

.. math::

    C_k(q \\mid R) = \\frac{|K_k(q) \\cap \\bigcup_{r \\in R} K_k(r)|}{|K_k(q)|},
    \\qquad J_k(a, b) = \\frac{|K_k(a) \\cap K_k(b)|}{|K_k(a) \\cup K_k(b)|},

where :math:`K_k(s)` is the set of *canonical* k-mers of ``s`` (each k-mer and its reverse complement map to the
lexicographically smaller of the two, so a reverse-complemented copy scores as a copy) and k-mers containing an N
are left out. ``C`` is the containment of Broder (1997, "On the resemblance and containment of documents"), as
used for genomic near-duplicates by Mash Screen (Ondov et al. 2019) and sourmash (Irber et al. 2022); ``J`` is the
Jaccard resemblance. Containment in the pooled reference is an upper bound of the containment in any single
reference window, so "C < Y" for a query proves that no single window holds Y of its k-mers either.

How k relates to identity: a copy with substitution rate d keeps about :math:`(1 - d)^k` of its k-mers (Mash,
Ondov et al. 2016), so with ``k = 16`` a containment of 0.5 is reached at d ≈ 4% (≈ 96% identity). Chance hits:
a random k-mer is among R random reference k-mers with probability about :math:`2R / 4^k`
(:func:`chance_containment`): with k = 16, 0.05% for R = 1 M and 2% for R = 48 M; with k = 12 already 12% for
R = 1 M, too close to the threshold to tell copies from chance.

Sets are exact (no MinHash sketch): a window holds at most a few hundred k-mers, and the reference is streamed in
chunks, so memory stays at one chunk plus the queries' k-mers. Everything is vectorised numpy on uint64 codes
(2 bits per base, k ≤ 31).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .validation import check_int

__all__ = ["MAX_K", "encode_windows", "canonical_kmers", "kmer_sets", "jaccard", "containment",
           "chance_containment", "summarise"]

MAX_K = 31  # 2 bits per base: 62 bits of a uint64, leaving a sentinel above every k-mer code
_SENTINEL = np.uint64(np.iinfo(np.uint64).max)
_CODE = np.full(256, 255, dtype=np.uint8)
for _i, _b in enumerate("ACGT"):
    _CODE[ord(_b)] = _CODE[ord(_b.lower())] = _i
for _c in "NRYKMSWBDHVnrykmswbdhv":
    _CODE[ord(_c)] = 4


def _check_k(k) -> int:
    return check_int("k", k, 1, MAX_K)


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values without the sentinel (a sort and a neighbour comparison: faster than
    ``numpy.unique``, which numpy 2.3+ runs through a hash table for integer input)."""
    x = np.sort(np.asarray(values).ravel())
    keep = np.ones(x.size, dtype=bool)
    keep[1:] = x[1:] != x[:-1]
    keep &= x != _SENTINEL
    return x[keep]


def encode_windows(seqs: Sequence[str] | np.ndarray, name: str = "seqs") -> np.ndarray:
    """Sequences as a ``(n, L)`` uint8 matrix of codes ``A C G T N = 0..4``, shorter rows padded with N.

    ``seqs`` is a sequence of strings over the IUPAC letters (either case; ambiguity codes become N) or already a
    2-D integer array of codes 0..4 (returned as uint8).

    Raises
    ------
    ValueError
        A letter outside the IUPAC nucleotide alphabet, a code outside 0..4, or another type.
    """
    if isinstance(seqs, np.ndarray) and seqs.ndim == 2 and seqs.dtype.kind in "iu":
        if seqs.size and (seqs.min() < 0 or seqs.max() > 4):
            raise ValueError(f"{name} holds codes outside 0..4, which is not allowed: use A C G T N = 0..4")
        return seqs.astype(np.uint8)
    if isinstance(seqs, str) or not all(isinstance(s, str) for s in seqs):
        raise ValueError(f"{name}={type(seqs).__name__} is not allowed: use a list of DNA strings or a 2-D array "
                         f"of codes 0..4")
    length = max((len(s) for s in seqs), default=0)
    out = np.full((len(seqs), length), 4, dtype=np.uint8)
    for i, s in enumerate(seqs):
        codes = _CODE[np.frombuffer(s.encode("latin-1", errors="replace"), dtype=np.uint8)]
        if (codes == 255).any():
            bad = sorted({c for c in s if _CODE[ord(c) % 256] == 255 or ord(c) > 255})
            raise ValueError(f"{name}[{i}] contains {''.join(bad)[:10]!r}, which is not allowed: use IUPAC "
                             f"nucleotide letters (ACGTN RYKMSWBDHV, either case)")
        out[i, :len(s)] = codes
    return out


def canonical_kmers(codes: np.ndarray, k: int) -> np.ndarray:
    """Canonical k-mer code at every position of every row: ``(n, L - k + 1)`` uint64.

    The forward code of the k-mer at position i is :math:`\\sum_j c_{i+j} 4^{k-1-j}`, the reverse complement's
    :math:`\\sum_j (3 - c_{i+j}) 4^{j}`; the canonical code is the smaller. A k-mer holding an N is
    ``2**64 - 1`` (a sentinel above every k-mer code). Rows shorter than k give an empty second axis.
    """
    k = _check_k(k)
    codes = encode_windows(codes, "codes")
    n, length = codes.shape
    m = max(length - k + 1, 0)
    fwd = np.zeros((n, m), dtype=np.uint64)
    rev = np.zeros((n, m), dtype=np.uint64)
    base = (codes & 3).astype(np.uint64)
    for j in range(k):
        x = base[:, j:j + m]
        fwd = (fwd << np.uint64(2)) | x
        rev |= (np.uint64(3) - x) << np.uint64(2 * j)
    n_count = np.zeros((n, length + 1), dtype=np.int32)
    np.cumsum(codes == 4, axis=1, out=n_count[:, 1:])
    has_n = (n_count[:, k:k + m] - n_count[:, :m]) > 0
    return np.where(has_n, _SENTINEL, np.minimum(fwd, rev))


def kmer_sets(seqs: Sequence[str] | np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct canonical k-mers of each sequence, flattened.

    Returns
    -------
    kmers : numpy.ndarray
        uint64 codes, sorted within each sequence.
    owner : numpy.ndarray
        int64 row index of each entry of ``kmers`` (ascending).
    """
    table = np.sort(canonical_kmers(encode_windows(seqs), k), axis=1)
    first = np.ones(table.shape, dtype=bool)
    first[:, 1:] = table[:, 1:] != table[:, :-1]
    keep = first & (table != _SENTINEL)
    owner = np.broadcast_to(np.arange(table.shape[0], dtype=np.int64)[:, None], table.shape)
    return table[keep], owner[keep]


def jaccard(a: str, b: str, k: int) -> float:
    """Jaccard resemblance :math:`J_k(a, b)` of the canonical k-mer sets of two sequences (nan if both are empty)."""
    if not isinstance(a, str) or not isinstance(b, str):
        raise ValueError("a, b are not allowed: use two DNA strings")
    kmers, owner = kmer_sets([a, b], k)
    sa, sb = kmers[owner == 0], kmers[owner == 1]
    shared = int(np.isin(sa, sb).sum())
    union = sa.size + sb.size - shared
    return float(shared / union) if union else float("nan")


def containment(query: Sequence[str] | np.ndarray, reference: Sequence[str] | np.ndarray, k: int, *,
                chunk: int = 20_000) -> np.ndarray:
    """Containment :math:`C_k(q \\mid R)` of every query in the pooled reference (module docstring).

    Parameters
    ----------
    query, reference : list of str or 2-D array of codes 0..4
        Query (test) windows and reference (training / pretraining) windows; lengths may differ.
    k : int
        k-mer length in [1, 31].
    chunk : int
        Reference rows encoded at a time (>= 1): bounds the memory to one chunk of k-mers.

    Returns
    -------
    numpy.ndarray
        float64, one value per query in [0, 1]; nan for a query without a valid k-mer (shorter than k or all N).
    """
    k = _check_k(k)
    check_int("chunk", chunk, 1)
    q_codes = encode_windows(query, "query")
    kmers, owner = kmer_sets(q_codes, k)
    distinct = _distinct(kmers)
    found = np.zeros(distinct.size, dtype=bool)
    n_ref = len(reference)
    for i in range(0, n_ref, chunk):
        ref = _distinct(canonical_kmers(encode_windows(reference[i:i + chunk], "reference"), k))
        if ref.size and distinct.size:
            pos = np.minimum(np.searchsorted(ref, distinct), ref.size - 1)
            found |= ref[pos] == distinct
    hit = found[np.searchsorted(distinct, kmers)] if kmers.size else np.zeros(0, dtype=bool)
    n = len(q_codes)
    total = np.bincount(owner, minlength=n).astype(float)
    shared = np.bincount(owner, weights=hit.astype(float), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, shared / total, np.nan)


def chance_containment(n_reference_kmers: int, k: int) -> float:
    """Expected containment of a random sequence in a reference of ``n_reference_kmers`` random k-mers (the
    total count, repeats included, e.g. windows × (L − k + 1)): each canonical k-mer is one of about
    :math:`4^k / 2` classes, hit by one reference k-mer with probability :math:`2/4^k`, so
    :math:`E[C] = 1 - (1 - 2/4^k)^{R} \\approx 2R/4^k` (uniform i.i.d. bases; real genomes, with repeats and
    low-complexity sequence, share more)."""
    k = _check_k(k)
    check_int("n_reference_kmers", n_reference_kmers, 0)
    return float(-np.expm1(n_reference_kmers * np.log1p(-2.0 / 4.0 ** k)))


def summarise(values: np.ndarray, threshold: float) -> dict[str, float]:
    """The distribution of containments: ``n``, ``frac_above`` (fraction with C >= ``threshold``), ``n_above``,
    the mean, median, 90th / 99th percentiles and the maximum (nan values, queries without k-mers, left out)."""
    if isinstance(threshold, bool) or not isinstance(threshold, float | int) or not 0 < threshold <= 1:
        raise ValueError(f"threshold={threshold!r} is not allowed: use a number in (0, 1]")
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return {"n": 0, "n_above": 0, "frac_above": float("nan"), "mean": float("nan"), "median": float("nan"),
                "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    above = int((v >= threshold).sum())
    return {"n": int(v.size), "n_above": above, "frac_above": above / v.size, "mean": float(v.mean()),
            "median": float(np.median(v)), "p90": float(np.quantile(v, 0.9)), "p99": float(np.quantile(v, 0.99)),
            "max": float(v.max())}
