"""Data that needs no internet: scikit-learn's bundled digits, `mnist1d` built locally, and loaders
for files a user brings (MNIST IDX, NPZ). Every function returns float32 arrays and int64 labels."""

from __future__ import annotations

import gzip
import os
import struct
from functools import cache
from pathlib import Path

import numpy as np

from .probe import UsageError


@cache
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8×8 digits: images [1797, 8, 8] in [0, 1], labels 0-9."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def cache_dir() -> Path:
    """Where generated data sets are kept between runs: $DEEPLIMITS_CACHE or ~/.cache/deeplimits."""
    return Path(os.environ.get("DEEPLIMITS_CACHE") or Path.home() / ".cache" / "deeplimits")


@cache
def mnist1d(seed: int = 42) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The mnist1d benchmark built locally (never downloaded): x_train [4000, 40], y, x_test [1000, 40], y.
    Building it takes seconds, so it is kept on disk (see `cache_dir`) after the first build."""
    path = cache_dir() / f"mnist1d-{seed}.npz"
    keys = ("x", "y", "x_test", "y_test")
    try:
        with np.load(path) as data:
            return tuple(data[k] for k in keys)  # type: ignore[return-value]
    except (OSError, KeyError, ValueError):
        pass  # not built yet, or unreadable: build it again
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise UsageError("mnist1d data needs the [perception] extra: pip install 'deeplimits[perception]'") from None
    args = get_dataset_args()
    args.seed = seed
    data = make_dataset(args)
    arrays = (data["x"].astype(np.float32), data["y"].astype(np.int64),
              data["x_test"].astype(np.float32), data["y_test"].astype(np.int64))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **dict(zip(keys, arrays)))
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    except OSError:
        pass  # a read-only home still gets the data, just not the cache
    return arrays


def split(x: np.ndarray, y: np.ndarray, n_train: int, n_test: int, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A random disjoint train/test split of the given sizes."""
    if n_train + n_test > len(x):
        raise UsageError(f"asked for {n_train} + {n_test} samples, the data has {len(x)}")
    idx = rng.permutation(len(x))
    tr, te = idx[:n_train], idx[n_train:n_train + n_test]
    return x[tr], y[tr], x[te], y[te]


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format; .gz accepted) into an array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read IDX file {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise UsageError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    body = raw[4 + 4 * ndim:]
    if len(body) != dtype.itemsize * int(np.prod(dims)):
        raise UsageError(f"{path}: IDX header says {dims} but the file holds {len(body)} bytes of data")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def load_mnist(folder: str | Path, split_name: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST from a folder a user downloaded: `train-images-idx3-ubyte[.gz]` etc., or `mnist.npz`
    (keys x_train, y_train, x_test, y_test). Images scaled to [0, 1]."""
    folder = Path(folder)
    prefix = "train" if split_name == "train" else "t10k"
    npz = folder / "mnist.npz"
    if npz.exists():
        with np.load(npz) as data:
            x, y = data[f"x_{split_name}"], data[f"y_{split_name}"]
    else:
        found = {}
        for kind in ("images-idx3", "labels-idx1"):
            for name in (f"{prefix}-{kind}-ubyte", f"{prefix}-{kind}-ubyte.gz"):
                if (folder / name).exists():
                    found[kind] = folder / name
        if len(found) < 2:
            raise UsageError(f"no MNIST {split_name} files in {folder} (expected {prefix}-images-idx3-ubyte "
                             f"and {prefix}-labels-idx1-ubyte, or mnist.npz)")
        x, y = load_idx(found["images-idx3"]), load_idx(found["labels-idx1"])
    if len(x) != len(y):
        raise UsageError(f"MNIST {split_name}: {len(x)} images but {len(y)} labels")
    return (x.astype(np.float32) / 255.0), y.astype(np.int64)
