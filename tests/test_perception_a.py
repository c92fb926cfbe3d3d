"""Direction-of-effect checks for same_different, small_transforms and data_hunger (contract v2: the
probes score what contenders predict; `evaluate` gives scored metrics), and the IDX/NPZ loaders of
deeplimits.datasets. Margins, never exact figures."""

from __future__ import annotations

import dataclasses
import gzip
import struct

import numpy as np
import pytest

from deeplimits import datasets
from deeplimits.backends import evaluate, make_tasks
from deeplimits.checks import check_learner_view
from deeplimits.limits.perception import data_hunger, same_different, small_transforms
from deeplimits.probe import Context, UsageError

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(probe, contender: str, knob, profile, seeds: int = 3) -> list[dict[str, float]]:
    """One contender's scored metrics on `seeds` seeds (no store, no runner)."""
    return evaluate(probe, probe.contender(contender), knob, list(range(seeds)), profile)


def _mean(rows: list[dict[str, float]], metric: str) -> float:
    return float(np.mean([r[metric] for r in rows]))


# --- same_different ---------------------------------------------------------------------------
def test_psvrt_images_carry_two_balanced_labels():
    x, sd, sr = same_different.draw_images(600, 16, 3, np.random.default_rng(0))
    assert x.shape == (600, 16, 16) and set(np.unique(x)) <= {-1.0, 0.0, 1.0}
    assert 0.4 < sd.mean() < 0.6 and 0.35 < sr.mean() < 0.65
    assert abs(np.corrcoef(sd, sr)[0, 1]) < 0.15  # the two labels are independent
    assert (np.abs(x).sum((1, 2)) == 2 * 9).all()  # two 3×3 items, never overlapping


def test_same_different_hides_test_labels():
    check_learner_view(same_different.PROBE)
    task = make_tasks(same_different.PROBE, 3, [0], same_different.PROFILES["smoke"])[0]
    assert not hasattr(task.public, "sd_test") and len(task.hidden[0]) == len(task.public.x_test)


def test_segmentation_solves_both_relations():
    rows = _run(same_different.PROBE, "segment_compare", 3, same_different.PROFILES["smoke"])
    assert _mean(rows, "sd_accuracy") > 0.99 and _mean(rows, "sr_accuracy") > 0.99


def test_cnn_learns_spatial_relation_before_same_different():
    prof = dataclasses.replace(same_different.PROFILES["quick"], n_train=400, epochs=20, patience=4, n_test=400)
    rows = _run(same_different.PROBE, "cnn", 3, prof)
    sd, sr = _mean(rows, "sd_accuracy"), _mean(rows, "sr_accuracy")
    assert sr > 0.85  # SR from 400 images
    assert sd < 0.75  # SD not, on the very same images
    assert _mean(rows, "sr_minus_sd") > 0.15


@pytest.mark.slow
def test_same_different_is_learned_for_single_pixels_only():
    """The positive control's direction: SD is learned at m = 1 and lost at m = 3 (same budget, same arm)."""
    prof = same_different.PROFILES["quick"]
    easy = _run(same_different.PROBE, "cnn", 1, prof)
    hard = _run(same_different.PROBE, "cnn", 3, prof)
    assert _mean(easy, "sd_accuracy") > 0.85
    assert _mean(hard, "sd_accuracy") < _mean(easy, "sd_accuracy") - 0.2
    assert _mean(hard, "sr_accuracy") > 0.85  # SR is learned from the very same hard images


# --- small_transforms -------------------------------------------------------------------------
def test_axis_shifts_are_lossless_on_the_canvas():
    prof = small_transforms.PROFILES["quick"]
    x, _ = datasets.digits()
    rng = np.random.default_rng(0)
    placed = small_transforms.paste(x[:50], prof.canvas, prof.jitter, rng)
    k = small_transforms.max_shift(prof)
    for dr, dc in small_transforms.AXES * k:
        moved = small_transforms.shift(placed, np.full(50, dr), np.full(50, dc))
        assert np.allclose(moved.sum((1, 2)), placed.sum((1, 2)))  # no digit pixel wrapped around
        assert np.array_equal(small_transforms.shift(moved, np.full(50, -dr), np.full(50, -dc)), placed)


def test_training_digits_are_jittered_not_at_one_offset():
    task = make_tasks(small_transforms.PROBE, 1, [0], small_transforms.PROFILES["quick"])[0]
    tops = [np.nonzero(img.sum(1) > 0)[0][0] for img in task.public.x_train[:200]]  # first row with ink
    lefts = [np.nonzero(img.sum(0) > 0)[0][0] for img in task.public.x_train[:200]]
    assert len(set(tops)) >= 3 and len(set(lefts)) >= 3


def test_shift_beyond_the_canvas_is_refused():
    prof = small_transforms.PROFILES["quick"]
    with pytest.raises(UsageError):
        small_transforms.make_task(small_transforms.max_shift(prof) + 1, np.random.default_rng(0), prof)


def test_knn_breaks_under_shift():
    prof = small_transforms.PROFILES["smoke"]
    moved = _run(small_transforms.PROBE, "knn", 3, prof)
    assert _mean(moved, "clean_accuracy") > 0.6  # 240 jittered training digits
    assert _mean(moved, "accuracy") < _mean(moved, "clean_accuracy") - 0.3 and _mean(moved, "flip_rate") > 0.5
    assert _mean(moved, "neg_accuracy") < 0.3  # negatives defeat raw-pixel matching too


def test_score_reads_predictions_only():
    task = make_tasks(small_transforms.PROBE, 1, [0], small_transforms.PROFILES["smoke"])[0]
    y = task.hidden
    out = {"x_test": y, "x_shifted": (y + 1) % 10, "x_rotated": y, "x_negated": y}
    m = small_transforms.score(task, out, None)
    assert m["clean_accuracy"] == 1.0 and m["accuracy"] == 0.0 and m["flip_rate"] == 1.0


@pytest.mark.slow
def test_mlp_breaks_under_shift_and_the_global_pool_cnn_much_less():
    prof = dataclasses.replace(small_transforms.PROFILES["quick"], epochs=20)
    mlp = _run(small_transforms.PROBE, "mlp", 2, prof)
    cnn = _run(small_transforms.PROBE, "cnn", 2, prof)
    aug = _run(small_transforms.PROBE, "mlp_augmented", 2, prof)
    assert _mean(mlp, "accuracy") < _mean(mlp, "clean_accuracy") - 0.3  # the MLP breaks at 2 px
    assert _mean(cnn, "accuracy") > _mean(cnn, "clean_accuracy") - 0.1  # global pooling nearly invariant
    assert _mean(cnn, "accuracy") > _mean(mlp, "accuracy") + 0.3
    assert _mean(aug, "accuracy") > _mean(mlp, "accuracy") + 0.2  # augmentation repairs the MLP


# --- data_hunger ------------------------------------------------------------------------------
def test_samples_to_target_interpolates_and_censors():
    sizes = (10, 100, 1000)
    assert data_hunger.samples_to_target(sizes, [0.9, 0.95, 0.99], 0.8) == (10.0, False)
    assert data_hunger.samples_to_target(sizes, [0.1, 0.2, 0.3], 0.8) == (1000.0, True)  # a lower bound
    n, censored = data_hunger.samples_to_target(sizes, [0.5, 0.7, 0.9], 0.8)
    assert n == pytest.approx(np.sqrt(100 * 1000)) and not censored  # halfway on the log axis


def test_score_turns_predictions_into_a_censored_cost():
    prof = data_hunger.PROFILES["smoke"]
    task = make_tasks(data_hunger.PROBE, "digits", [0], prof)[0]
    y_test, target = task.hidden
    ctx = Context("data_hunger", "x", "digits", 0, prof)
    perfect = data_hunger.score(task, {n: y_test for n in prof.sizes_digits}, ctx)
    assert perfect["samples_to_target"] == prof.sizes_digits[0] and perfect["target_censored"] == 0.0
    wrong = data_hunger.score(task, {n: (y_test + 1) % 10 for n in prof.sizes_digits}, ctx)
    assert wrong["target_censored"] == 1.0 and wrong["samples_to_target"] == prof.sizes_digits[-1]


def test_dataset_knob_accepts_only_known_names():
    data_hunger.PROBE.knob.check("digits")
    with pytest.raises(UsageError):
        data_hunger.PROBE.knob.check("cifar10")


def test_subsets_are_nested_and_standardised():
    task = data_hunger.make_task("digits", np.random.default_rng(1), data_hunger.PROFILES["smoke"])
    x_small, y_small, _ = task.public.subset(30)
    x_big, y_big, _ = task.public.subset(480)
    assert np.array_equal(y_small, y_big[:30])
    assert abs(x_big.mean()) < 1e-4 and len(task.public.x_test) == 1797 - 480


def test_digits_deep_arm_is_not_hungrier_than_classical():
    prof = dataclasses.replace(data_hunger.PROFILES["smoke"], epochs=60, patience=10, width=128)
    deep = _mean(_run(data_hunger.PROBE, "mlp", "digits", prof), "samples_to_target")
    best = min(_mean(_run(data_hunger.PROBE, name, "digits", prof), "samples_to_target")
               for name in ("knn", "logistic_regression"))
    assert deep < 2.0 * best  # the known counter-example


@pytest.mark.slow
def test_mnist1d_learning_curves():
    prof = data_hunger.PROFILES["quick"]
    cnn = _run(data_hunger.PROBE, "cnn", "mnist1d", prof)
    linear = _run(data_hunger.PROBE, "logistic_regression", "mnist1d", prof)
    # mnist1d is built so that linear models fail (Greydanus: 32 %) and convolutions do well
    assert _mean(linear, "accuracy_at_max") < 0.45
    assert _mean(cnn, "accuracy_at_max") > _mean(linear, "accuracy_at_max") + 0.2


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
