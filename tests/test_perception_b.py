"""Direction-of-effect checks for adversarial, fooling_images and shortcut. Margins, never exact figures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from deeplimits.backends import run_contender
from deeplimits.limits.perception import adversarial, fooling_images, shortcut

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(probe, contender: str, knob, profile, seeds: int = 2) -> list[dict[str, float]]:
    """Call one contender directly on `seeds` seeds (no store, no runner)."""
    return run_contender(probe, probe.contender(contender), knob, list(range(seeds)), profile)


def _mean(rows: list[dict[str, float]], metric: str) -> float:
    return float(np.mean([r[metric] for r in rows]))


# --- adversarial ------------------------------------------------------------------------------
def test_pgd_flips_an_accurate_net_where_sign_noise_does_not():
    rows = _run(adversarial.PROBE, "mlp_erm", 0.2, adversarial.PROFILES["smoke"])
    assert _mean(rows, "clean_accuracy") > 0.9
    assert _mean(rows, "noise_accuracy") > 0.7
    assert _mean(rows, "robust_accuracy") < 0.3
    assert _mean(rows, "robust_accuracy") <= _mean(rows, "fgsm_accuracy") + 0.05  # PGD at least as strong
    assert _mean(rows, "transfer_accuracy") < _mean(rows, "noise_accuracy")


def test_eps_zero_leaves_the_images_alone():
    prof = adversarial.PROFILES["smoke"]
    task = adversarial.make_task(0.0, np.random.default_rng(0), prof)
    assert adversarial.pgd(None, task.x_test, task.y_test, 0.0, 5, 0) is task.x_test  # type: ignore[arg-type]
    noisy = adversarial.sign_noise(task.x_test, 0.1, 0)
    assert np.abs(noisy - task.x_test).max() <= 0.1 + 1e-6 and noisy.min() >= 0 and noisy.max() <= 1


@pytest.mark.slow
def test_adversarial_training_buys_robustness_at_its_eps():
    prof = dataclasses.replace(adversarial.PROFILES["quick"], n_test=200, n_min_eps=50)
    erm = _run(adversarial.PROBE, "mlp_erm", 0.1, prof, seeds=3)
    at = _run(adversarial.PROBE, "pgd_training", 0.1, prof, seeds=3)
    assert _mean(at, "robust_accuracy") > _mean(erm, "robust_accuracy") + 0.2
    assert _mean(at, "median_min_eps") > _mean(erm, "median_min_eps")
    assert _mean(at, "clean_accuracy") > _mean(erm, "clean_accuracy") - 0.05  # small clean cost at most


# --- fooling_images ---------------------------------------------------------------------------
def test_optimised_noise_fools_softmax_but_not_the_density_reject():
    prof = fooling_images.PROFILES["smoke"]
    plain = _run(fooling_images.PROBE, "mlp_softmax", 30, prof)
    start = _run(fooling_images.PROBE, "mlp_softmax", 0, prof)
    guarded = _run(fooling_images.PROBE, "density_reject", 30, prof)
    assert _mean(plain, "clean_accuracy") > 0.9
    assert _mean(plain, "fooled_fraction") > 0.8 > 0.3 > _mean(start, "fooled_fraction")
    assert _mean(plain, "detection_auroc") < 0.5  # fooling images look *more* confident than digits
    assert _mean(plain, "nn_distance_ratio") > 1.5  # far from every training digit
    assert _mean(guarded, "fooled_fraction") < 0.1
    assert _mean(guarded, "detection_auroc") > 0.95


@pytest.mark.slow
def test_a_noise_class_does_not_stop_new_fooling_images():
    prof = fooling_images.PROFILES["quick"]
    rows = _run(fooling_images.PROBE, "noise_class", 100, prof, seeds=3)
    assert _mean(rows, "fooled_fraction") > 0.8
    assert _mean(rows, "fooled_fraction_evo") > 0.5


# --- shortcut ---------------------------------------------------------------------------------
def test_tag_agreement_and_placement():
    prof = shortcut.PROFILES["quick"]
    task = shortcut.make_task(0.9, np.random.default_rng(0), prof)
    agree = task.cue_train == task.y_train
    assert abs(agree[task.env_train == 0].mean() - 0.95) < 0.05
    assert abs(agree[task.env_train == 1].mean() - 0.85) < 0.05
    assert (task.cue_test == task.y_test).mean() < 0.2
    tags = task.x_train[:, 0, shortcut.TAG[0], shortcut.TAG[1]].mean((1, 2))
    assert np.array_equal(tags, task.cue_train.astype(np.float32))  # the tag region holds the cue only


def test_group_weights_make_cue_and_label_independent():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1000)
    cue = np.where(rng.random(1000) < 0.95, y, 1 - y)
    w = shortcut.group_weights(y, cue)
    mass = [w[(y == a) & (cue == b)].sum() for a in (0, 1) for b in (0, 1)]
    assert np.allclose(mass, mass[0]) and np.isclose(w.mean(), 1.0)


def test_erm_follows_the_tag_and_attribution_shows_it():
    prof = shortcut.PROFILES["smoke"]
    erm = _run(shortcut.PROBE, "erm", 0.9, prof)
    oracle = _run(shortcut.PROBE, "oracle", 0.9, prof)
    assert _mean(erm, "test_accuracy") < 0.4 < 0.6 < _mean(oracle, "test_accuracy")
    assert _mean(erm, "tag_flip_rate") > 0.5
    area = shortcut.TAG_AREA
    assert _mean(erm, "ig_cue_share") > 4 * area and _mean(erm, "lrp_cue_share") > 4 * area


@pytest.mark.slow
def test_balancing_recovers_what_erm_loses_and_the_control_end_is_clean():
    prof = shortcut.PROFILES["quick"]
    erm = _run(shortcut.PROBE, "erm", 0.95, prof, seeds=3)
    balanced = _run(shortcut.PROBE, "group_balanced", 0.95, prof, seeds=3)
    control = _run(shortcut.PROBE, "erm", 0.5, prof, seeds=3)
    assert _mean(balanced, "test_accuracy") > _mean(erm, "test_accuracy") + 0.2
    assert _mean(balanced, "ig_cue_share") < _mean(erm, "ig_cue_share")
    assert _mean(control, "test_accuracy") > 0.6
    assert _mean(control, "ig_cue_share") < 2 * shortcut.TAG_AREA + 0.1
