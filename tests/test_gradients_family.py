"""Direction-of-effect checks for the gradients family: parity, end_to_end, conditioning, flat_activations.

Margins, never exact figures. Scored metrics come from deeplimits.backends.evaluate (the probe scores
each contender's output); fast checks run by default, anything over ~10 s is marked slow."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from deeplimits import backends
from deeplimits.checks import check_learner_view
from deeplimits.limits.gradients import conditioning as cond
from deeplimits.limits.gradients import end_to_end as e2e
from deeplimits.limits.gradients import flat_activations as flat
from deeplimits.limits.gradients import parity
from deeplimits.probe import task_rng

pytestmark = pytest.mark.usefixtures("one_thread")


def evaluate(module, name: str, knob, profile, seeds: int = 3) -> list[dict[str, float]]:
    probe = module.PROBE
    return backends.evaluate(probe, probe.contender(name), knob, list(range(seeds)), profile)


def mean(results: list[dict[str, float]], metric: str) -> float:
    return float(np.mean([r[metric] for r in results]))


@pytest.mark.parametrize("module", [parity, e2e, cond, flat], ids=lambda m: m.PROBE.id)
def test_two_tuned_deep_arms_and_a_budget_field(module) -> None:
    probe = module.PROBE
    assert len(probe.deep_arms) >= 2 and all(a.tuning for a in probe.deep_arms)
    assert probe.budget_fields == ("steps",) and probe.fit is None
    check_learner_view(probe, "quick")


# --- parity ---------------------------------------------------------------------------------
def test_parity_subset_is_exactly_half_and_hidden() -> None:
    prof = parity.PROFILES["quick"]
    for d in (8, 24):
        task = parity.make_task(d, task_rng("parity", d, 0), prof)
        assert task.hidden.mask.sum() == d // 2
        x, y = task.public.stream.sample((64,), torch.Generator().manual_seed(0))
        np.testing.assert_array_equal(y.numpy(), np.prod(np.where(task.hidden.mask, x.numpy(), 1), -1))


def test_parity_gradient_variance_matches_autograd_and_falls_with_d() -> None:
    prof = dataclasses.replace(parity.PROFILES["smoke"], grad_targets=6)
    d = 6
    model = parity.make_mlp(d, 10 * d)
    closed = parity.gradient_variance(model, d, np.random.default_rng(0), prof)["grad_var"]
    rng = np.random.default_rng(0)  # the same targets as the closed form draws
    x = torch.as_tensor(parity.all_inputs(d))
    grads = []
    for _ in range(prof.grad_targets):
        mask = np.zeros(d, bool)
        mask[rng.choice(d, size=d // 2, replace=False)] = True
        y = torch.as_tensor(np.prod(np.where(mask, x.numpy(), 1), -1))
        g = torch.autograd.grad(parity.hinge(model(x)[None], y[None]).sum(), list(model.parameters()))
        grads.append(torch.cat([t.flatten() for t in g]).double())
    g = torch.stack(grads)
    assert closed == pytest.approx(float(((g - g.mean(0)) ** 2).sum(1).mean()), rel=1e-4)
    small, large = (parity.gradient_variance(parity.make_mlp(d, 10 * d), d, np.random.default_rng(1), prof)
                    for d in (4, 12))
    assert large["grad_var"] < small["grad_var"] / 20 and large["grad_var_bound"] < small["grad_var_bound"] / 20


def test_parity_gf2_solves_from_the_stream_where_sgd_and_adam_fail() -> None:
    prof = dataclasses.replace(parity.PROFILES["smoke"], steps=400)
    assert mean(evaluate(parity, "gf2_elimination", 32, prof), "accuracy") == 1.0
    for arm in ("mlp_sgd", "mlp_adam"):
        easy, hard = (mean(evaluate(parity, arm, d, prof), "accuracy") for d in (4, 24))
        assert easy > 0.95 and hard < 0.65, (arm, easy, hard)


# --- conditioning ---------------------------------------------------------------------------
def test_ramp_matrix_inverse_is_the_second_difference() -> None:
    """Lemma 1: W⁻¹ is the convolution with [1, -2, 1], so the conv architecture can be exact."""
    w = cond.ramp_matrix(12)
    f = np.random.default_rng(0).normal(size=(3, 12)) @ w.T
    taps = cond.conv_features(f) @ np.array([1.0, -2.0, 1.0])
    np.testing.assert_allclose(taps, f @ np.linalg.inv(w).T, atol=1e-9)


def test_condition_numbers_order_and_growth() -> None:
    prof = dataclasses.replace(cond.PROFILES["smoke"], steps=50)
    by_n = {n: {c: evaluate(cond, c, n, prof) for c in ("fc_gd", "conv_gd", "conv_whitened")} for n in (5, 25)}
    for n, res in by_n.items():
        fc, conv, white = (mean(res[c], "cond") for c in ("fc_gd", "conv_gd", "conv_whitened"))
        assert fc > 3 * conv > 3 * white, (n, fc, conv, white)
        assert white < 1.01
    # the fully connected problem worsens much faster with n than a power 2
    assert mean(by_n[25]["fc_gd"], "cond") > 25 * mean(by_n[5]["fc_gd"], "cond")


def test_whitened_conv_learns_at_once_where_both_fully_connected_arms_stall() -> None:
    prof = dataclasses.replace(cond.PROFILES["smoke"], steps=1_000)
    white = evaluate(cond, "conv_whitened", 50, prof)
    assert mean(white, "rel_error") < 1e-6 and mean(white, "steps_to_target") <= 5
    for arm in ("fc_gd", "fc_adam"):
        assert mean(evaluate(cond, arm, 50, prof), "rel_error") > 0.1, arm
        assert mean(evaluate(cond, arm, 5, dataclasses.replace(prof, steps=3_000)), "rel_error") < cond.TARGET


def test_conditioning_scores_predictions_not_claims() -> None:
    """The probe scores the output: zeros score 1, the exact inverse scores 0."""
    prof = cond.PROFILES["smoke"]
    task = cond.make_task(10, task_rng("conditioning", 10, 0), prof)
    ctx = None
    assert cond.score(task, np.zeros_like(task.hidden.p_test), ctx)["rel_error"] == pytest.approx(1.0)
    exact = task.public.f_test @ np.linalg.inv(cond.ramp_matrix(10)).T
    assert cond.score(task, exact, ctx)["rel_error"] < 1e-20


# --- flat activations -------------------------------------------------------------------------
def test_surrogate_matches_the_staircase_away_from_jumps_and_metric_is_finite() -> None:
    z = torch.as_tensor(flat.jump_offsets(1.0))
    mids = (z[1:] + z[:-1]) / 2  # middle of every flat piece (a wide piece's sigmoid tail reaches ~1e-4 further)
    np.testing.assert_allclose(flat.surrogate(mids, z).numpy(), flat.round_down(mids, z).numpy(), atol=1e-3)
    r = torch.linspace(-11, 11, 20_001, dtype=torch.float64)
    np.testing.assert_allclose(flat.surrogate_near(r, z).numpy(), flat.surrogate(r, z).numpy(), atol=1e-8)
    for h in flat.PROFILES["paper"].knob:
        task = flat.make_task(h, task_rng("flat_activations", h, 0), flat.PROFILES["smoke"])
        assert np.var(task.hidden.y_test) > 0  # the data straddles the fine jumps at every h


def test_exact_gradient_is_zero_and_forward_only_beats_the_surrogate_at_the_paper_scale() -> None:
    prof = dataclasses.replace(flat.PROFILES["smoke"], steps=600)
    fwd = evaluate(flat, "forward_only", 1.0, prof)
    sur = evaluate(flat, "surrogate_adam", 1.0, prof)
    assert all(r["grad_norm_exact"] == 0.0 for r in fwd + sur)
    assert mean(fwd, "rel_error") < 0.2 and mean(sur, "rel_error_raw") > 1.0, (fwd, sur)
    assert all(0.0 <= r["rel_error"] <= 1.0 and r["rel_error"] <= r["rel_error_raw"] for r in fwd + sur)


# --- end to end -----------------------------------------------------------------------------
def test_line_images_carry_their_bit() -> None:
    """Each image's bit is readable from its pixels (so Dec can succeed): a linear probe on orientation."""
    from sklearn.linear_model import LogisticRegression

    prof = e2e.PROFILES["smoke"]
    x, y = e2e.render_lines(3_000, np.random.default_rng(0), prof)
    assert set(np.unique(x)) <= {0.0, 1.0} and (x.sum(1) >= 3).all()
    clf = LogisticRegression(max_iter=2_000).fit(x[:2_000], y[:2_000])
    assert clf.score(x[2_000:], y[2_000:]) > 0.8


def test_snr_falls_with_k_end_to_end_but_not_decomposed() -> None:
    prof = dataclasses.replace(e2e.PROFILES["smoke"], steps=1, dec_steps=1, snr_samples=8_192)
    e1 = mean(evaluate(e2e, "end_to_end_adam", 1, prof, seeds=2), "snr")
    e3 = mean(evaluate(e2e, "end_to_end_adam", 3, prof, seeds=2), "snr")
    d3 = mean(evaluate(e2e, "decomposed", 3, prof, seeds=2), "snr")
    assert e3 < e1 / 2, (e1, e3)
    assert d3 > 2 * e3, (d3, e3)


@pytest.mark.slow
def test_decomposition_beats_end_to_end_at_k3() -> None:
    prof = e2e.PROFILES["quick"]
    d3 = mean(evaluate(e2e, "decomposed", 3, prof), "accuracy")
    e1 = max(mean(evaluate(e2e, arm, 1, prof), "accuracy") for arm in ("end_to_end_adam", "end_to_end_sgd"))
    e3 = max(mean(evaluate(e2e, arm, 3, prof), "accuracy") for arm in ("end_to_end_adam", "end_to_end_sgd"))
    assert e1 > 0.9 and d3 > e3 + 0.2, (e1, e3, d3)
