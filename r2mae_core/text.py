"""Text for the language section: a byte-level BPE tokenizer, document splits and fixed-length sequences.

Tokenizer: byte-level BPE (``tokenizers`` package; Sennrich et al. 2016, byte-level as in GPT-2) trained on the
*training documents* of Brown only, with four special tokens ``[PAD]=0, [CLS]=1, [SEP]=2, [MASK]=3`` and the 256
byte symbols in the initial alphabet. Byte-level means every Unicode string has an encoding (no ``[UNK]``):
characters outside Latin-1 (CJK, emoji, U+FFFD) become their UTF-8 bytes. Lone surrogates (which cannot be
encoded as UTF-8) are replaced by U+FFFD first, whitespace runs collapse to one space (:func:`clean_text`).
The trained tokenizer is stored as JSON in the result cache (``results/cache/language_tokenizer/``).

Sequences: ``[CLS] t_1 … t_k [SEP] [PAD] …`` of exactly ``seq_len`` ids with ``k ≤ seq_len − 2`` and an
attention mask (True = real token, specials included). Brown documents are *packed*: consecutive sentences of
one document fill a sequence while they fit; a sentence longer than ``seq_len − 2`` tokens is cut into pieces
(nothing is dropped). A free text (an e-mail) is *truncated* to its first ``seq_len − 2`` tokens; an empty text
gives ``[CLS] [SEP]``.

Split of Brown **by document**, stratified by genre, fixed seed (independent of the run seed): per genre,
``n_val = n_test = max(1, round(0.15 · n_docs))`` documents, the rest train (500 docs → 352 / 74 / 74). Only
training documents feed the tokenizer and pretraining; validation documents choose hyper-parameters (probe C,
the best fixed ratio); test documents are only scored.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._rng import check_seed, numpy_generator
from .data.language import decode_text
from .validation import check_int

__all__ = ["SPECIAL_TOKENS", "PAD_ID", "CLS_ID", "SEP_ID", "MASK_ID", "N_SPECIAL", "clean_text", "train_tokenizer",
           "tokenizer_from_json", "split_documents", "split_stratified", "Sequences", "pack_documents",
           "encode_texts", "simplify_tag", "tag_vocabulary"]

SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3
N_SPECIAL = len(SPECIAL_TOKENS)  # ids < N_SPECIAL are special: never masked, never a random replacement
NO_TAG = -1  # POS label of positions that are not the first sub-token of a word
_WS = re.compile(r"\s+")


def clean_text(text: str | bytes | None) -> str:
    """Valid Unicode with single spaces: bytes decoded as UTF-8 (invalid → U+FFFD), lone surrogates → U+FFFD,
    NUL and every whitespace run → one space, ends stripped. ``None`` gives ``""``."""
    if text is None:
        return ""
    if not isinstance(text, str | bytes | bytearray):
        raise ValueError(f"text of type {type(text).__name__} is not allowed: use str or bytes")
    return _WS.sub(" ", decode_text(text).replace("\x00", " ")).strip()


def train_tokenizer(texts: Iterable[str], vocab_size: int, *, min_frequency: int = 2):
    """Train a byte-level BPE tokenizer on ``texts`` (the caller passes training documents only).

    Parameters
    ----------
    texts
        Training text (cleaned with :func:`clean_text`).
    vocab_size
        Final vocabulary size including the 4 specials and the 256 byte symbols (≥ 300).
    min_frequency
        A pair is merged only if it occurs at least this often.

    Returns
    -------
    tokenizers.Tokenizer
        ``add_prefix_space`` byte-level pre-tokenizer and decoder; ids ``0..3`` are :data:`SPECIAL_TOKENS`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    vocab_size = check_int("vocab_size", vocab_size, 300)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator((clean_text(t) for t in texts), trainer=trainer)
    ids = [tok.token_to_id(s) for s in SPECIAL_TOKENS]
    if ids != list(range(N_SPECIAL)):  # the model and the masking rely on these ids
        raise RuntimeError(f"special token ids {ids} are not 0..{N_SPECIAL - 1}")
    return tok


def tokenizer_from_json(text: str):
    """A tokenizer saved with ``Tokenizer.to_str()``."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(text)


def split_stratified(labels: Sequence, *, val_fraction: float, test_fraction: float, seed: int = 0) -> np.ndarray:
    """Per-item split ``"train" | "val" | "test"`` stratified by ``labels``, from a fixed seed.

    Per label with n items: ``n_val = max(1, round(val_fraction·n))``, ``n_test = max(1, round(test_fraction·n))``
    (0 when n < 3: everything train), the rest train; items are permuted with ``numpy.random.default_rng(seed)``.
    """
    check_seed(seed)
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not 0 < value < 0.5:
            raise ValueError(f"{name}={value!r} is not allowed: use a fraction in (0, 0.5)")
    labels = np.asarray(labels)
    out = np.full(labels.shape[0], "train", dtype=object)
    rng = numpy_generator(seed)
    for label in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == label)
        idx = idx[rng.permutation(idx.size)]
        if idx.size < 3:
            continue
        n_val = max(1, round(val_fraction * idx.size))
        n_test = max(1, round(test_fraction * idx.size))
        out[idx[:n_val]] = "val"
        out[idx[n_val:n_val + n_test]] = "test"
    return out


def split_documents(brown: pd.DataFrame, *, val_fraction: float = 0.15, test_fraction: float = 0.15,
                    seed: int = 0) -> dict[str, str]:
    """Brown document id → ``"train" | "val" | "test"``, stratified by genre (:func:`split_stratified`)."""
    docs = brown.drop_duplicates("doc_id").sort_values("doc_id")
    split = split_stratified(docs["genre"].to_numpy(), val_fraction=val_fraction, test_fraction=test_fraction,
                             seed=seed)
    return dict(zip(docs["doc_id"], split, strict=True))


def simplify_tag(tag: str) -> str:
    """Coarse Brown tag: drop the ``fw-`` prefix, keep the first part of a contraction (``ppss+md`` → ``ppss``)
    and of a hyphenated modifier (``np-tl`` → ``np``, ``at-hl`` → ``at``); punctuation tags (``--``, ``(``)
    stay as they are."""
    t = tag.lower().removeprefix("fw-")
    t = t.split("+")[0] or t
    head = t.split("-")[0]
    return head or t


def tag_vocabulary(tags: Iterable[Sequence[str]], min_count: int = 50) -> list[str]:
    """Coarse tags seen at least ``min_count`` times (sorted), plus ``"other"`` for the rest."""
    counts = Counter(simplify_tag(t) for sentence in tags for t in sentence)
    return sorted(t for t, c in counts.items() if c >= min_count and t != "other") + ["other"]


@dataclass
class Sequences:
    """Fixed-length sequences.

    Attributes
    ----------
    input_ids
        ``(N, L)`` int64, ``[CLS] … [SEP] [PAD]…``.
    attention_mask
        ``(N, L)`` bool, True = real token (``[CLS]``/``[SEP]`` included), False = padding.
    group
        ``(N,)`` index of the source document / text each sequence comes from.
    tags
        ``(N, L)`` int64 POS label at the first sub-token of each word, :data:`NO_TAG` elsewhere (or None).
    n_cut
        Sentences (packing) or texts (truncation) longer than ``L − 2`` tokens.
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    group: np.ndarray
    tags: np.ndarray | None = None
    n_cut: int = 0

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def subset(self, idx: np.ndarray) -> Sequences:
        return Sequences(self.input_ids[idx], self.attention_mask[idx], self.group[idx],
                         None if self.tags is None else self.tags[idx], self.n_cut)


def _frame(rows: list[list[int]], tag_rows: list[list[int]] | None, groups: list[int], seq_len: int,
           n_cut: int) -> Sequences:
    n = len(rows)
    ids = np.full((n, seq_len), PAD_ID, dtype=np.int64)
    tags = np.full((n, seq_len), NO_TAG, dtype=np.int64) if tag_rows is not None else None
    for i, row in enumerate(rows):
        ids[i, 0], ids[i, 1:len(row) + 1], ids[i, len(row) + 1] = CLS_ID, row, SEP_ID
        if tags is not None:
            tags[i, 1:len(row) + 1] = tag_rows[i]
    attn = np.arange(seq_len)[None, :] < (np.array([len(r) for r in rows], dtype=np.int64)[:, None] + 2)
    return Sequences(ids, attn, np.asarray(groups, dtype=np.int64), tags, n_cut)


def _check_seq_len(seq_len: int) -> int:
    return check_int("seq_len", seq_len, 4)


def pack_documents(tokenizer, documents: Sequence[Sequence[Sequence[str]]], seq_len: int, *,
                   tags: Sequence[Sequence[Sequence[str]]] | None = None,
                   tag_names: Sequence[str] | None = None) -> Sequences:
    """Pack the sentences of each document into sequences of ``seq_len`` (module docstring).

    Parameters
    ----------
    tokenizer
        From :func:`train_tokenizer`.
    documents
        Per document, its sentences as lists of words (Brown's tokenisation).
    seq_len
        L; at most ``L − 2`` content tokens per sequence.
    tags, tag_names
        Optional per-word Brown tags (same nesting as ``documents``) and the coarse tag vocabulary
        (:func:`tag_vocabulary`): the first sub-token of each word gets the index of its coarse tag.
    """
    seq_len = _check_seq_len(seq_len)
    cap = seq_len - 2
    index = {t: i for i, t in enumerate(tag_names)} if tag_names is not None else None
    other = index.get("other", NO_TAG) if index is not None else NO_TAG
    # each word is encoded on its own (what is_pretokenized does), so encode every distinct word once
    vocab = sorted({w for doc in documents for sentence in doc for w in sentence})
    encs = tokenizer.encode_batch([[clean_text(w) or "_"] for w in vocab], is_pretokenized=True,
                                  add_special_tokens=False) if vocab else []
    word_ids = {w: e.ids for w, e in zip(vocab, encs, strict=True)}
    rows, tag_rows, groups = [], ([] if tags is not None else None), []
    n_cut = 0
    for d, sentences in enumerate(documents):
        cur, cur_tags = [], []
        for s, words in enumerate(sentences):
            ids, lab = [], []
            for w, word in enumerate(words):
                pieces = word_ids[word]
                ids += pieces
                if tags is not None:
                    lab += [index.get(simplify_tag(tags[d][s][w]), other)] + [NO_TAG] * (len(pieces) - 1)
            if not ids:
                continue
            if tags is None:
                lab = [NO_TAG] * len(ids)
            if len(cur) + len(ids) > cap and cur:
                rows.append(cur), groups.append(d)
                if tag_rows is not None:
                    tag_rows.append(cur_tags)
                cur, cur_tags = [], []
            if len(ids) > cap:  # an over-long sentence: cut into full pieces, the remainder starts a sequence
                n_cut += 1
                while len(ids) > cap:
                    rows.append(ids[:cap]), groups.append(d)
                    if tag_rows is not None:
                        tag_rows.append(lab[:cap])
                    ids, lab = ids[cap:], lab[cap:]
            cur, cur_tags = cur + ids, cur_tags + lab
        if cur:
            rows.append(cur), groups.append(d)
            if tag_rows is not None:
                tag_rows.append(cur_tags)
    return _frame(rows, tag_rows, groups, seq_len, n_cut)


def encode_texts(tokenizer, texts: Sequence[str | bytes | None], seq_len: int) -> Sequences:
    """One sequence per text: ``[CLS]`` + its first ``seq_len − 2`` tokens + ``[SEP]`` + padding.

    Texts are cut to their first ``32 · seq_len`` characters, cleaned with :func:`clean_text` and cut to
    ``8 · seq_len`` characters before tokenising (byte-level tokens average about 4 characters, so
    the kept tokens are in practice the same); an empty text
    gives ``[CLS] [SEP]``; ``n_cut`` counts the truncated texts.
    """
    seq_len = _check_seq_len(seq_len)
    cap = seq_len - 2
    for t in texts:
        if t is not None and not isinstance(t, str | bytes | bytearray):
            raise ValueError(f"text of type {type(t).__name__} is not allowed: use str or bytes")
    cleaned = [clean_text(t[:32 * seq_len] if t is not None else None)[:8 * seq_len] for t in texts]
    encs = tokenizer.encode_batch(cleaned, add_special_tokens=False) if cleaned else []
    n_cut = sum(len(e.ids) > cap for e in encs)
    return _frame([e.ids[:cap] for e in encs], None, list(range(len(encs))), seq_len, n_cut)
