"""Direction-of-effect checks for adversarial, fooling_images and shortcut (contract v2: the contender
returns a model, the probe attacks and scores it). Margins, never exact figures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from deeplimits.backends import evaluate, make_tasks
from deeplimits.limits.perception import adversarial, fooling_images, shortcut
from deeplimits.probe import Contender, Context

pytestmark = pytest.mark.usefixtures("one_thread")


def _eval(probe, contender: Contender | str, knob, profile, seeds: int = 3) -> list[dict[str, float]]:
    """The probe's scored metrics for one contender on `seeds` seeds (no store, no runner)."""
    c = probe.contender(contender) if isinstance(contender, str) else contender
    return evaluate(probe, c, knob, list(range(seeds)), profile)


def _mean(rows: list[dict[str, float]], metric: str) -> float:
    return float(np.mean([r[metric] for r in rows]))


# --- adversarial ------------------------------------------------------------------------------
ADV = dataclasses.replace(adversarial.PROFILES["quick"], n_test=100, epochs=15, n_min_eps=10, bisect_rounds=2)


@pytest.mark.parametrize("arm", ["mlp", pytest.param("cnn", marks=pytest.mark.slow)])
def test_pgd_flips_accurate_nets_where_sign_noise_does_not(arm: str):
    rows = _eval(adversarial.PROBE, arm, 0.2, ADV if arm == "mlp" else dataclasses.replace(ADV, epochs=40))
    assert _mean(rows, "clean_accuracy") > 0.9, arm
    assert _mean(rows, "noise_accuracy") > 0.7, arm
    assert _mean(rows, "robust_accuracy") < 0.3, arm
    assert _mean(rows, "robust_accuracy") <= _mean(rows, "fgsm_accuracy") + 0.05  # PGD at least as strong
    assert _mean(rows, "transfer_accuracy") < _mean(rows, "noise_accuracy")


def test_eps_zero_leaves_the_images_alone():
    prof = adversarial.PROFILES["smoke"]
    task = adversarial.make_task(0.0, np.random.default_rng(0), prof)
    x = task.public.x_test
    assert adversarial.pgd(None, x, task.hidden.y_test, 0.0, 5, 0) is x  # type: ignore[arg-type]
    noisy = adversarial.sign_noise(x, 0.1, 0)
    assert np.abs(noisy - x).max() <= 0.1 + 1e-6 and noisy.min() >= 0 and noisy.max() <= 1


def test_a_model_without_gradients_is_attacked_by_transfer_only():
    rows = _eval(adversarial.PROBE, "knn", 0.2, adversarial.PROFILES["smoke"])
    assert all("robust_accuracy" not in r and "transfer_accuracy" in r for r in rows)
    assert _mean(rows, "transfer_accuracy") <= _mean(rows, "clean_accuracy")


def test_the_attack_goes_through_the_models_own_preprocessing():
    """A defence that rescales its input inside forward is attacked through it (white-box)."""
    prof = adversarial.PROFILES["smoke"]
    task = make_tasks(adversarial.PROBE, 0.2, [0], ADV)[0]
    models, _ = adversarial.train_erm(adversarial.mlp_factory, ADV.mlp_lr, [task.public], [0], ADV)
    wrapped = nn.Sequential(Halve(), Double(), models[0])  # identity preprocessing, still differentiated
    plain = adversarial.score(task, models[0], Context("adversarial", "x", 0.2, 0, prof))
    guarded = adversarial.score(task, wrapped, Context("adversarial", "x", 0.2, 0, prof))
    assert abs(plain["robust_accuracy"] - guarded["robust_accuracy"]) < 0.1


class Halve(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / 2


class Double(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


@pytest.mark.slow
def test_adversarial_training_buys_robustness_at_its_eps():
    erm = _eval(adversarial.PROBE, "mlp", 0.1, ADV)
    at = _eval(adversarial.PROBE, "pgd_training", 0.1, ADV)
    assert _mean(at, "robust_accuracy") > _mean(erm, "robust_accuracy") + 0.2
    assert _mean(at, "median_min_eps") > _mean(erm, "median_min_eps")
    assert _mean(at, "clean_accuracy") > _mean(erm, "clean_accuracy") - 0.05  # small clean cost at most


# --- fooling_images ---------------------------------------------------------------------------
FOOL = dataclasses.replace(fooling_images.PROFILES["quick"], n_test=100, epochs=15, restarts=1)


def test_torch_gmm_matches_sklearn():
    from sklearn.mixture import GaussianMixture

    x = np.random.default_rng(0).random((300, 6))
    gmm = GaussianMixture(3, covariance_type="full", reg_covar=1e-2, random_state=0).fit(x)
    ours = fooling_images.TorchGMM(gmm)(torch.as_tensor(x, dtype=torch.float32)).detach().numpy()
    assert np.allclose(ours, gmm.score_samples(x), atol=1e-3)


@pytest.mark.parametrize("arm", ["mlp", pytest.param("cnn", marks=pytest.mark.slow)])
def test_optimised_noise_fools_plain_softmax_arms(arm: str):
    prof = FOOL if arm == "mlp" else dataclasses.replace(FOOL, epochs=40)
    start = _eval(fooling_images.PROBE, arm, 0, prof)
    fooled = _eval(fooling_images.PROBE, arm, 100, prof)
    assert _mean(start, "clean_accuracy") > 0.9 and _mean(start, "trust_score") > 0.9, arm
    assert _mean(start, "fooled_fraction") < 0.2 < 0.8 < _mean(fooled, "fooled_fraction"), arm
    assert _mean(fooled, "nn_distance_ratio") > 1.5  # far from every training digit


class BrightnessGuard(nn.Module):
    """A reject option a non-adaptive attack from uniform noise cannot pass: reject bright images."""

    def __init__(self, classifier: nn.Module, threshold: float) -> None:
        super().__init__()
        self.classifier, self.reject_threshold = classifier, threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)

    def reject_score(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1).mean(-1)


def test_the_fooling_attack_is_adaptive():
    """The probe's attack optimises through a model's reject option: a guard that the non-adaptive
    attack never passes (uniform noise is brighter than its threshold) is beaten by the adaptive one."""
    plain = fooling_images.PROBE.contender("mlp")

    def guarded(tasks, ctxs):
        return [dataclasses.replace(a, output=BrightnessGuard(a.output, 0.35)) for a in plain.fn(tasks, ctxs)]

    rows = _eval(fooling_images.PROBE, Contender("bright", "challenger", guarded, batched=True), 100, FOOL)
    assert _mean(rows, "fooled_fraction_nonadaptive") < 0.2
    assert _mean(rows, "fooled_fraction") > _mean(rows, "fooled_fraction_nonadaptive") + 0.5


def test_density_reject_lowers_fooling_at_a_short_attack():
    plain = _eval(fooling_images.PROBE, "mlp", 30, FOOL)
    guarded = _eval(fooling_images.PROBE, "density_reject", 30, FOOL)
    assert _mean(guarded, "fooled_fraction") < _mean(plain, "fooled_fraction") - 0.3
    assert 0.0 < _mean(guarded, "test_rejection_rate") < 0.15  # it pays with a few rejected digits


@pytest.mark.slow
def test_a_noise_class_does_not_stop_new_fooling_images():
    rows = _eval(fooling_images.PROBE, "noise_class", 100, FOOL)
    assert _mean(rows, "fooled_fraction") > 0.8


# --- shortcut ---------------------------------------------------------------------------------
SHORT = dataclasses.replace(shortcut.PROFILES["quick"], n_attr=30, ig_steps=16)


def test_tag_agreement_and_placement():
    prof = shortcut.PROFILES["quick"]
    task = shortcut.make_task(0.9, np.random.default_rng(0), prof)
    pub = task.public
    agree = pub.cue_train == pub.y_train
    assert abs(agree[pub.env_train == 0].mean() - 0.95) < 0.05
    assert abs(agree[pub.env_train == 1].mean() - 0.85) < 0.05
    assert (task.hidden.cue_test == task.hidden.y_test).mean() < 0.2
    tags = pub.x_train[:, 0, shortcut.TAG[0], shortcut.TAG[1]].mean((1, 2))
    assert np.array_equal(tags, pub.cue_train.astype(np.float32))  # the tag region holds the cue only


def test_group_weights_make_cue_and_label_independent():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1000)
    cue = np.where(rng.random(1000) < 0.95, y, 1 - y)
    w = shortcut.group_weights(y, cue)
    mass = [w[(y == a) & (cue == b)].sum() for a in (0, 1) for b in (0, 1)]
    assert np.allclose(mass, mass[0]) and np.isclose(w.mean(), 1.0)


def _tag_free(tasks, ctxs):
    """Test device only (fairness rule 5): ERM on images with the tag removed, never a contender."""
    clean = [dataclasses.replace(t, x_train=shortcut.with_tag(t.x_train, False),
                                 x_val=shortcut.with_tag(t.x_val, False)) for t in tasks]
    return shortcut.erm(clean, ctxs, "mlp")


def test_erm_follows_the_tag_and_attribution_shows_it():
    erm = _eval(shortcut.PROBE, "mlp", 0.9, SHORT)
    oracle = _eval(shortcut.PROBE, Contender("tag_free", "challenger", _tag_free, batched=True), 0.9, SHORT)
    balanced = _eval(shortcut.PROBE, "group_balanced", 0.9, SHORT)
    assert _mean(erm, "test_accuracy") < 0.4 < 0.6 < _mean(oracle, "test_accuracy")
    assert _mean(balanced, "test_accuracy") > _mean(erm, "test_accuracy") + 0.2
    assert _mean(erm, "tag_flip_rate") > 0.5 > 0.2 > _mean(oracle, "tag_flip_rate")
    area = shortcut.TAG_AREA
    assert _mean(erm, "ig_cue_share") > 4 * area and _mean(erm, "lrp_cue_share") > 4 * area
    assert _mean(oracle, "ig_cue_share") < 2 * area
    assert _mean(balanced, "ig_cue_share") < _mean(erm, "ig_cue_share") - 0.1


@pytest.mark.slow
def test_the_cnn_arm_follows_the_tag_too_and_the_control_end_is_clean():
    cnn = _eval(shortcut.PROBE, "cnn", 0.9, SHORT)
    control = _eval(shortcut.PROBE, "mlp", 0.5, SHORT)
    assert _mean(cnn, "test_accuracy") < 0.4 and _mean(cnn, "tag_flip_rate") > 0.5
    assert _mean(control, "test_accuracy") > 0.6
    assert _mean(control, "ig_cue_share") < 2 * shortcut.TAG_AREA + 0.05
