"""Training and cost family: the machinery and the direction of each effect (margins, never exact figures)."""

import dataclasses

import numpy as np
import pytest
import torch

from deeplimits.backends import evaluate, make_tasks
from deeplimits.probe import Context, task_rng


# --- feature_scales ---------------------------------------------------------------------------
def test_forest_is_invariant_to_feature_scales() -> None:
    """Trees split on ranks: rescaling each feature leaves a forest's predictions unchanged."""
    from sklearn.ensemble import RandomForestClassifier

    from deeplimits.limits.training.feature_scales import load

    x, y = load("breast_cancer", np.random.default_rng(0))
    scaled = x * 10.0 ** np.random.default_rng(1).uniform(-4, 4, size=x.shape[1])
    a = RandomForestClassifier(20, random_state=0).fit(x[:400], y[:400]).predict(x[400:])
    b = RandomForestClassifier(20, random_state=0).fit(scaled[:400], y[:400]).predict(scaled[400:])
    assert (a == b).mean() > 0.98  # ties between equal values may split differently


def test_feature_scales_task_variants_and_learner_view() -> None:
    from deeplimits.limits.training.feature_scales import PROBE

    prof = dataclasses.replace(PROBE.profile("smoke"), variants=("plain", "noise", "rotated"), noise_features=7)
    task = PROBE.make_task(3.0, task_rng(PROBE.id, 3.0, 0), prof)
    plain, noise, rotated = task.public["plain"], task.public["noise"], task.public["rotated"]
    assert noise.x_train.shape[1] == plain.x_train.shape[1] + 7 and rotated.x_train.shape == plain.x_train.shape
    spread = np.log10(plain.x_train.std(0))
    assert spread.max() - spread.min() > 3  # the knob spreads the scales over orders of magnitude
    assert len(task.hidden) == len(plain.x_test) and not hasattr(plain, "y_test")


def test_sgd_mlp_needs_scaled_features(one_thread) -> None:
    """Direction: at s = 4 the raw-feature SGD MLP is far below the same MLP after StandardScaler."""
    from deeplimits.limits.training.feature_scales import PROBE

    prof = dataclasses.replace(PROBE.profile("smoke"), epochs=10, patience=10)
    raw = evaluate(PROBE, PROBE.contender("mlp_sgd"), 4.0, [0, 1, 2], prof)
    scaled = evaluate(PROBE, PROBE.contender("mlp_scaled"), 4.0, [0, 1, 2], prof)
    assert np.mean([m["test_accuracy"] for m in scaled]) > np.mean([m["test_accuracy"] for m in raw]) + 0.1


# --- slow_gradients ---------------------------------------------------------------------------
def test_least_squares_task_has_the_condition_number() -> None:
    from deeplimits.limits.training.slow_gradients import PROBE

    prof = PROBE.profile("smoke")
    for kappa in (10.0, 1e4):
        x = PROBE.make_task(kappa, task_rng(PROBE.id, kappa, 0), prof).public.x
        eig = np.linalg.eigvalsh(x.T @ x / len(x))
        assert eig.max() == pytest.approx(1.0, rel=1e-6) and eig.max() / eig.min() == pytest.approx(kappa, rel=1e-4)


def test_gradient_descent_steps_grow_with_kappa(one_thread) -> None:
    from deeplimits.limits.training.slow_gradients import PROBE

    prof = dataclasses.replace(PROBE.profile("smoke"), steps=3000)
    easy = evaluate(PROBE, PROBE.contender("sgd"), 10.0, [0, 1, 2], prof)
    hard = evaluate(PROBE, PROBE.contender("sgd"), 100.0, [0, 1, 2], prof)
    assert all(m["censored"] == 0 for m in easy + hard)
    assert np.mean([m["steps_to_target"] for m in hard]) > 5 * np.mean([m["steps_to_target"] for m in easy])
    solve = evaluate(PROBE, PROBE.contender("lstsq"), 100.0, [0], prof)[0]
    assert solve["log10_error"] < -8 and solve["macs_to_target"] < np.mean([m["macs_to_target"] for m in hard])


def test_a_cost_never_reached_is_censored(one_thread) -> None:
    from deeplimits.limits.training.slow_gradients import PROBE

    prof = dataclasses.replace(PROBE.profile("smoke"), steps=50)
    out = evaluate(PROBE, PROBE.contender("sgd"), 1e4, [0], prof)[0]
    assert out["censored"] == 1 and out["steps_to_target"] == 50 and out["log10_error"] > -3


# --- seed_instability -------------------------------------------------------------------------
def test_ring_modes_are_distinct_and_score_counts_collapse() -> None:
    from deeplimits.limits.training.seed_instability import PROBE, mixture

    means, std = mixture(8)
    assert len(np.unique(np.round(means, 6), axis=0)) == 8  # endpoint=False: no repeated mode
    task = PROBE.make_task(8, task_rng(PROBE.id, 8, 0), PROBE.profile("smoke"))
    ctx = Context(PROBE.id, "x", 8, 0, PROBE.profile("smoke"))
    rng = np.random.default_rng(0)
    good = means[rng.integers(0, 8, 2500)] + std * rng.normal(size=(2500, 2))
    collapsed = means[0] + std * rng.normal(size=(2500, 2))
    diffuse = rng.uniform(-3, 3, size=(2500, 2))
    assert PROBE.score(task, good, ctx)["coverage"] == 1.0
    bad = PROBE.score(task, collapsed, ctx)
    assert bad["coverage"] == pytest.approx(1 / 8) and bad["failed"] == 1 and bad["hq"] > 0.95
    assert PROBE.score(task, diffuse, ctx)["coverage"] < 0.5  # covering everything thinly is not coverage


def test_gaussian_mixture_recovers_every_mode() -> None:
    from deeplimits.limits.training.seed_instability import PROBE

    out = evaluate(PROBE, PROBE.contender("gaussian_mixture"), 8, [0, 1], PROBE.profile("smoke"))
    assert all(m["coverage"] == 1.0 for m in out)


def test_batched_gan_members_are_independent(one_thread) -> None:
    """A seed's generator does not depend on which other seeds share its batch."""
    from deeplimits.limits.training.seed_instability import PROBE

    prof = dataclasses.replace(PROBE.profile("smoke"), steps=20)
    arm = PROBE.contender("gan_dcgan")
    tasks = make_tasks(PROBE, 2, [0, 1], prof)
    ctx = [Context(PROBE.id, arm.name, 2, s, prof) for s in (0, 1)]
    both = arm.fn([t.public for t in tasks], ctx)
    alone = arm.fn([tasks[1].public], ctx[1:])
    assert np.allclose(both[1].output, alone[0].output, atol=1e-4)


# --- compression ------------------------------------------------------------------------------
def test_magnitude_pruning_keeps_one_in_r_weights() -> None:
    from deeplimits.ensemble import Ensemble, seeded
    from deeplimits.limits.cost.compression import count, magnitude_masks, make_mlp, prunable

    ens = Ensemble([seeded(lambda: make_mlp(32), s) for s in (0, 1)])
    masks = magnitude_masks(ens, 1 / 8)
    with torch.no_grad():
        for name, mask in masks.items():
            ens.params[name].mul_(mask)
    model = ens.member(1)
    weights = sum(m.weight.numel() for m, _ in prunable(model))
    kept = sum(float((m.weight != 0).sum()) for m, _ in prunable(model))
    assert kept == pytest.approx(weights / 8, rel=0.01)
    params, macs = count(model)
    assert macs == kept and params == kept + sum(m.bias.numel() for m, _ in prunable(model))


def test_student_width_divides_parameters() -> None:
    from deeplimits.limits.cost.compression import student_width

    full = 128 * 128 + 76 * 128 + 10
    for r in (2, 8, 32):
        h = student_width(128, r)
        assert 0.6 * full / r <= h * h + 76 * h + 10 <= full / r


def test_classical_models_report_their_cost() -> None:
    from deeplimits.limits.cost.compression import PROBE

    lr = evaluate(PROBE, PROBE.contender("logistic_regression"), 1, [0], PROBE.profile("smoke"))[0]
    assert lr["test_accuracy"] > 0.9 and lr["macs"] == 640 and "latency_ms" not in lr


def test_compression_smoke_trains_on_a_subsample_of_the_same_split() -> None:
    from deeplimits.limits.cost.compression import PROBE

    prof = PROBE.profile("smoke")
    first = PROBE.make_task(1, task_rng(PROBE.id, 1, 0), prof)
    again = PROBE.make_task(1, task_rng(PROBE.id, 1, 0), prof)
    full = PROBE.make_task(1, task_rng(PROBE.id, 1, 0), dataclasses.replace(prof, train_size=0))
    assert again.public is first.public  # cached: every contender and the scoring share one split
    assert len(first.public.x) == prof.train_size and len(full.public.x) > 1000
    assert np.array_equal(full.public.x[:prof.train_size], first.public.x)
    assert np.array_equal(full.hidden[1], first.hidden[1])  # the test split does not shrink
