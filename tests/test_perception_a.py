"""Direction-of-effect checks for same_different, small_transforms and data_hunger, and the IDX/NPZ
loaders of deeplimits.datasets. Margins, never exact figures."""

from __future__ import annotations

import dataclasses
import gzip
import struct

import numpy as np
import pytest

from deeplimits import datasets
from deeplimits.backends import run_contender
from deeplimits.limits.perception import data_hunger, same_different, small_transforms
from deeplimits.probe import UsageError

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(probe, contender: str, knob, profile, seeds: int = 3) -> list[dict[str, float]]:
    """Call one contender directly on `seeds` seeds (no store, no runner)."""
    return run_contender(probe, probe.contender(contender), knob, list(range(seeds)), profile)


def _mean(rows: list[dict[str, float]], metric: str) -> float:
    return float(np.mean([r[metric] for r in rows]))


# --- same_different ---------------------------------------------------------------------------
def test_psvrt_images_carry_two_balanced_labels():
    x, sd, sr = same_different.draw_images(600, 16, 3, np.random.default_rng(0))
    assert x.shape == (600, 1, 16, 16) and set(np.unique(x)) <= {-1.0, 0.0, 1.0}
    assert 0.4 < sd.mean() < 0.6 and 0.35 < sr.mean() < 0.65
    assert abs(np.corrcoef(sd, sr)[0, 1]) < 0.15  # the two labels are independent
    assert (np.abs(x).sum((1, 2, 3)) == 2 * 9).all()  # two 3×3 items, never overlapping


def test_segmentation_solves_both_relations():
    prof = same_different.PROFILES["smoke"]
    rows = _run(same_different.PROBE, "segment_compare", 200, prof, seeds=2)
    assert _mean(rows, "sd_accuracy") > 0.99 and _mean(rows, "sr_accuracy") > 0.99


def test_cnn_learns_spatial_relation_not_same_different():
    prof = dataclasses.replace(same_different.PROFILES["smoke"], steps=300)
    rows = _run(same_different.PROBE, "cnn", 1000, prof)
    sd, sr = _mean(rows, "sd_accuracy"), _mean(rows, "sr_accuracy")
    assert sr > 0.85
    assert sd < 0.65
    assert sr - sd > 0.2


@pytest.mark.slow
def test_cnn_memorises_same_different_without_generalising():
    rows = _run(same_different.PROBE, "cnn", 100, same_different.PROFILES["quick"])
    assert _mean(rows, "sd_train_accuracy") > 0.95  # the net fits the training labels...
    assert _mean(rows, "sd_accuracy") < 0.6  # ...but SD stays at chance on new images
    assert _mean(rows, "sr_accuracy") > 0.75  # while SR generalises from the same 100 images


# --- small_transforms -------------------------------------------------------------------------
def test_shift_is_lossless_on_the_padded_canvas():
    x, _ = datasets.digits()
    p = small_transforms.pad(x[:50])
    k = small_transforms.PAD
    for dr, dc in small_transforms.DIRECTIONS * k:
        moved = small_transforms.shift(p, np.full(50, dr), np.full(50, dc))
        assert np.allclose(moved.sum((1, 2)), p.sum((1, 2)))
        back = small_transforms.shift(moved, np.full(50, -dr), np.full(50, -dc))
        assert np.array_equal(back, p)


def test_knob_rejects_shifts_that_would_crop_the_digit():
    with pytest.raises(UsageError):
        small_transforms.PROBE.knob.check(small_transforms.PAD + 1)


def test_knn_breaks_under_shift():
    prof = small_transforms.PROFILES["smoke"]
    clean = _run(small_transforms.PROBE, "knn_pixels", 0, prof, seeds=2)
    moved = _run(small_transforms.PROBE, "knn_pixels", 3, prof, seeds=2)
    assert _mean(clean, "accuracy") > 0.95
    assert _mean(moved, "accuracy") < 0.5 and _mean(moved, "flip_rate") > 0.5
    assert _mean(clean, "neg_accuracy") < 0.3  # negatives defeat raw-pixel matching too


@pytest.mark.slow
def test_cnn_breaks_under_shift_and_augmentation_repairs_it():
    prof = small_transforms.PROFILES["quick"]
    plain0 = _run(small_transforms.PROBE, "cnn", 0, prof)
    plain = _run(small_transforms.PROBE, "cnn", 3, prof)
    aug = _run(small_transforms.PROBE, "cnn_augmented", 3, prof)
    assert _mean(plain0, "accuracy") > 0.9  # positive control
    assert _mean(plain, "accuracy") < _mean(plain0, "accuracy") - 0.2
    assert _mean(plain, "flip_rate") > 0.2
    assert _mean(aug, "accuracy") > _mean(plain, "accuracy") + 0.2
    assert _mean(aug, "flip_rate") < _mean(plain, "flip_rate")
    assert _mean(plain, "neg_accuracy") < 0.5  # negation is not a shift: neither model covers it


# --- data_hunger ------------------------------------------------------------------------------
def _curve_task(sizes=(10, 100, 1000), target=0.8) -> data_hunger.CurveTask:
    z = np.zeros((1, 2), np.float32)
    return data_hunger.CurveTask("digits", z, np.zeros(1, np.int64), z, np.zeros(1, np.int64), sizes, target)


def test_samples_to_target_interpolates_and_censors():
    task = _curve_task()
    assert data_hunger.curve_metrics(task, [0.9, 0.95, 0.99])["samples_to_target"] == 10
    assert data_hunger.curve_metrics(task, [0.1, 0.2, 0.3])["samples_to_target"] == 2000  # censored
    mid = data_hunger.curve_metrics(task, [0.5, 0.7, 0.9])["samples_to_target"]
    assert mid == pytest.approx(np.sqrt(100 * 1000))  # halfway between 0.7 and 0.9 on the log axis
    m = data_hunger.curve_metrics(task, [0.5, 0.7, 0.9])
    assert m["target_margin"] == pytest.approx(0.1) and m["accuracy_at_max"] == pytest.approx(0.9)


def test_dataset_knob_accepts_only_known_names():
    data_hunger.PROBE.knob.check("digits")
    with pytest.raises(UsageError):
        data_hunger.PROBE.knob.check("cifar10")


def test_subsets_are_nested_and_standardised():
    task = data_hunger.make_task("digits", np.random.default_rng(1), data_hunger.PROFILES["smoke"])
    x_small, y_small, _ = task.subset(30)
    x_big, y_big, _ = task.subset(480)
    assert np.array_equal(y_small, y_big[:30])
    assert abs(x_big.mean()) < 1e-4 and len(task.x_test) == 1797 - 480


def test_digits_mlp_is_not_hungrier_than_classical():
    prof = data_hunger.PROFILES["smoke"]
    deep = _mean(_run(data_hunger.PROBE, "mlp", "digits", prof), "samples_to_target")
    best = min(_mean(_run(data_hunger.PROBE, name, "digits", prof), "samples_to_target")
               for name in ("knn", "logistic_regression"))
    assert deep < 2.0 * best  # the known counter-example


@pytest.mark.slow
def test_mnist1d_learning_curves():
    prof = data_hunger.PROFILES["quick"]
    deep = _run(data_hunger.PROBE, "mlp", "mnist1d", prof)
    linear = _run(data_hunger.PROBE, "logistic_regression", "mnist1d", prof)
    # mnist1d is built so that linear models fail (Greydanus: 32 %) and nets do better
    assert _mean(linear, "accuracy_at_max") < 0.45
    assert _mean(deep, "accuracy_at_max") > _mean(linear, "accuracy_at_max") + 0.1


# --- datasets: IDX / NPZ loaders on files written here -------------------------------------------
def _write_idx(path, array: np.ndarray, code: int = 0x08, compress: bool = False) -> None:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(">u1" if code == 0x08 else ">i4").tobytes()
    (gzip.open if compress else open)(path, "wb").write(raw)


def test_load_idx_roundtrip_plain_gz_and_int32(tmp_path):
    img = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a-idx3-ubyte", img)
    _write_idx(tmp_path / "a-idx3-ubyte.gz", img, compress=True)
    assert np.array_equal(datasets.load_idx(tmp_path / "a-idx3-ubyte"), img)
    assert np.array_equal(datasets.load_idx(tmp_path / "a-idx3-ubyte.gz"), img)
    ints = np.array([-5, 0, 70000], dtype=np.int32)
    _write_idx(tmp_path / "b-idx1", ints, code=0x0C)
    assert datasets.load_idx(tmp_path / "b-idx1").tolist() == [-5, 0, 70000]


def test_load_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "not-idx"
    bad.write_bytes(b"PK\x03\x04 this is a zip, not IDX")
    with pytest.raises(UsageError, match="bad magic"):
        datasets.load_idx(bad)
    short = tmp_path / "short-idx"
    _write_idx(short, np.zeros((4, 2, 2), np.uint8))
    short.write_bytes(short.read_bytes()[:-3])  # truncated body
    with pytest.raises(UsageError, match="header says"):
        datasets.load_idx(short)
    with pytest.raises(UsageError, match="cannot read"):
        datasets.load_idx(tmp_path / "missing-idx3-ubyte")


def test_load_mnist_from_idx_folder(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    lab = np.array([0, 1, 2, 3, 9], np.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", img, compress=True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", lab)
    x, y = datasets.load_mnist(tmp_path, "test")
    assert x.dtype == np.float32 and x.shape == (5, 28, 28) and 0.0 <= x.min() and x.max() <= 1.0
    assert np.allclose(x * 255, img) and y.dtype == np.int64 and y.tolist() == lab.tolist()
    with pytest.raises(UsageError, match="no MNIST train files"):
        datasets.load_mnist(tmp_path, "train")


def test_load_mnist_from_npz_and_mismatch(tmp_path):
    img = np.full((3, 28, 28), 255, np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=img, y_train=np.array([1, 2, 3]), x_test=img[:2],
             y_test=np.array([4]))
    x, y = datasets.load_mnist(tmp_path, "train")
    assert x.shape == (3, 28, 28) and float(x.max()) == 1.0 and y.tolist() == [1, 2, 3]
    with pytest.raises(UsageError, match="2 images but 1 labels"):
        datasets.load_mnist(tmp_path, "test")
