"""Direction-of-effect checks for the gradients family probes end_to_end, conditioning, flat_activations.

Margins, never exact figures. Fast checks run by default; anything over ~10 s is marked slow."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from deeplimits import backends
from deeplimits.limits.gradients import conditioning as cond
from deeplimits.limits.gradients import end_to_end as e2e
from deeplimits.limits.gradients import flat_activations as flat

pytestmark = pytest.mark.usefixtures("one_thread")


def run_contender(module, name: str, knob, profile, seeds: int = 2) -> list[dict[str, float]]:
    probe = module.PROBE
    return backends.run_contender(probe, probe.contender(name), knob, list(range(seeds)), profile)


def mean(results: list[dict[str, float]], metric: str) -> float:
    return float(np.mean([r[metric] for r in results]))


# --- conditioning ---------------------------------------------------------------------------
def test_ramp_matrix_inverse_is_the_second_difference() -> None:
    """Lemma 1: W⁻¹ is the convolution with [1, -2, 1], so the conv architecture can be exact."""
    w = cond.ramp_matrix(12)
    f = np.random.default_rng(0).normal(size=(3, 12)) @ w.T
    taps = cond.conv_features(f) @ np.array([1.0, -2.0, 1.0])
    np.testing.assert_allclose(taps, f @ np.linalg.inv(w).T, atol=1e-9)


def test_condition_numbers_order_and_growth() -> None:
    prof = dataclasses.replace(cond.PROFILES["smoke"], steps=200)
    by_n = {n: {c: run_contender(cond, c, n, prof) for c in ("fully_connected", "convolution", "conv_whitened")}
            for n in (5, 25)}
    for n, res in by_n.items():
        fc, conv, white = (mean(res[c], "cond") for c in ("fully_connected", "convolution", "conv_whitened"))
        assert fc > 3 * conv > 3 * white, (n, fc, conv, white)
        assert white < 1.01
    # the fully connected problem worsens much faster with n than a power 2
    assert mean(by_n[25]["fully_connected"], "cond") > 25 * mean(by_n[5]["fully_connected"], "cond")


def test_whitened_conv_learns_at_once_where_fully_connected_stalls() -> None:
    prof = dataclasses.replace(cond.PROFILES["smoke"], steps=1_000)
    white = run_contender(cond, "conv_whitened", 25, prof)
    fc = run_contender(cond, "fully_connected", 25, prof)
    assert mean(white, "rel_error") < 1e-6 and mean(white, "steps_to_target") <= 5
    assert mean(fc, "rel_error") > 0.3 and mean(fc, "steps_to_target") == prof.steps + 1
    easy = run_contender(cond, "fully_connected", 5, dataclasses.replace(prof, steps=5_000))
    assert mean(easy, "rel_error") < cond.TARGET  # the positive control: small n is learned


# --- flat activations -------------------------------------------------------------------------
def test_surrogate_matches_staircase_far_from_jumps() -> None:
    unit = flat.StepUnit(3, 1.0, "sigmoid")
    unit.phase.fill_(0.3)
    r = torch.tensor([0.8, 1.8, -1.2, 2.8], dtype=torch.float64)  # each 0.5 away from a jump
    np.testing.assert_allclose(unit.surrogate(r).numpy(), flat.staircase(r, 1.0, 0.3).numpy(), atol=0.01)


def test_exact_gradient_is_zero_and_forward_only_learns() -> None:
    prof = flat.PROFILES["smoke"]
    exact = run_contender(flat, "exact_gradient", 1.0, prof)
    fwd = run_contender(flat, "forward_only", 1.0, prof)
    assert all(r["grad_norm_init"] == 0.0 for r in exact)
    assert mean(exact, "rel_error") > 0.8  # never moves from the constant-ish initial prediction
    assert mean(fwd, "rel_error") < 0.2 < mean(exact, "rel_error") - 0.6


@pytest.mark.slow
def test_flat_quick_ordering() -> None:
    prof = dataclasses.replace(flat.PROFILES["quick"], steps=1_000)
    for h in (0.25, 4.0):
        fwd = mean(run_contender(flat, "forward_only", h, prof, seeds=3), "rel_error")
        sig = mean(run_contender(flat, "sigmoid_surrogate", h, prof, seeds=3), "rel_error")
        exact = mean(run_contender(flat, "exact_gradient", h, prof, seeds=3), "rel_error")
        assert fwd < 0.2 and sig < 0.2 and exact > 0.8, (h, fwd, sig, exact)


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
    e1 = mean(run_contender(e2e, "end_to_end", 1, prof), "snr")
    e3 = mean(run_contender(e2e, "end_to_end", 3, prof), "snr")
    d3 = mean(run_contender(e2e, "decomposed", 3, prof), "snr")
    assert e3 < e1 / 2, (e1, e3)
    assert d3 > 2 * e3, (d3, e3)


@pytest.mark.slow
def test_decomposition_beats_end_to_end_at_k3() -> None:
    prof = e2e.PROFILES["quick"]
    d3 = mean(run_contender(e2e, "decomposed", 3, prof, seeds=3), "accuracy")
    e3 = mean(run_contender(e2e, "end_to_end", 3, prof, seeds=3), "accuracy")
    e1 = mean(run_contender(e2e, "end_to_end", 1, prof, seeds=3), "accuracy")
    assert e1 > 0.9 and d3 > e3 + 0.2, (e1, e3, d3)
