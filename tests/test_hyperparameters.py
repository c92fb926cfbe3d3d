"""hyperparameters: the search record's scoring, the learner's view, and the direction of the effect
(margins, never exact figures)."""

import dataclasses

import numpy as np
import pytest

pytest.importorskip("optuna")

from deeplimits.backends import evaluate  # noqa: E402
from deeplimits.limits.training.hyperparameters import PROBE, Search, incumbents  # noqa: E402
from deeplimits.probe import Context, Task, task_rng  # noqa: E402


def _ctx(knob: int = 3) -> Context:
    return Context(PROBE.id, "x", knob, 0, PROBE.profile("smoke"))


def test_incumbent_is_the_best_validation_so_far_earliest_on_ties() -> None:
    val = np.array([0.5, 0.7, 0.7, 0.6, 0.9, 0.9])
    assert incumbents(val).tolist() == [0, 1, 1, 1, 4, 4]


def test_score_counts_trials_to_match_and_censors() -> None:
    y = np.array([0, 1] * 50)
    wrong, right = 1 - y, y.copy()
    half = np.where(np.arange(100) < 50, y, 1 - y)  # 0.5 accuracy
    task = Task(None, (y, 0.9))  # the forest scored 0.9
    # trial 2 is the best on validation and matches; trial 3 matches too but validation never picks it
    out = PROBE.score(task, Search(np.array([0.6, 0.8, 0.7]), np.stack([wrong, right, right])), _ctx())
    assert out["test_accuracy"] == 1.0 and out["trials_to_match"] == 2 and out["unmatched"] == 0
    assert out["match_volume"] == pytest.approx(2 / 3) and out["good_volume"] == pytest.approx(2 / 3)
    assert out["trial_test_001"] == 0.0 and out["trial_test_003"] == 1.0
    # the pick is chosen by validation, not by test accuracy: a good configuration it passes over does not count
    out = PROBE.score(task, Search(np.array([0.9, 0.5, 0.4]), np.stack([half, right, right])), _ctx())
    assert out["test_accuracy"] == 0.5 and out["unmatched"] == 1 and out["trials_to_match"] == 3  # censored at B


def test_plain_predictions_score_as_one_fit() -> None:
    """A challenger's estimator (as_arrays) returns predictions: one fit, no search."""
    y = np.array([0, 1] * 50)
    out = PROBE.score(Task(None, (y, 0.9)), y.copy(), _ctx())
    assert out == {"test_accuracy": 1.0, "trials_to_match": 1.0, "unmatched": 0.0}


def test_task_is_standardised_and_hides_the_labels() -> None:
    prof = PROBE.profile("smoke")
    task = PROBE.make_task(2, task_rng(PROBE.id, 2, 0), prof)
    table = task.public
    assert np.allclose(table.x_train.mean(0), 0, atol=1e-5) and np.allclose(table.x_train.std(0), 1, atol=1e-3)
    y_test, target = task.hidden
    assert len(y_test) == len(table.x_test) and not hasattr(table, "y_test") and 0.5 < target <= 1.0


def test_forest_alternative_is_the_reference_point() -> None:
    """The untuned forest is one fit and defines 'matches': its own score is the target exactly."""
    prof = PROBE.profile("smoke")
    out = evaluate(PROBE, PROBE.contender("random_forest"), 2, [0, 1], prof)
    for seed, m in enumerate(out):
        _, target = PROBE.make_task(2, task_rng(PROBE.id, 2, seed), prof).hidden
        assert m["test_accuracy"] == target and m["trials_to_match"] == 1 and m["unmatched"] == 0


def test_search_records_every_trial_and_configurations_differ(one_thread) -> None:
    """Direction: hyperparameters matter (configurations of one search differ widely in test accuracy), and
    the search's pick after 8 trials is on average no worse than after 1."""
    prof = dataclasses.replace(PROBE.profile("smoke"), epochs=6, patience=3, max_width=64)
    out = evaluate(PROBE, PROBE.contender("mlp_random_search"), 8, [0, 1, 2], prof)
    spreads, first, last = [], [], []
    for m in out:
        test = np.array([m[f"trial_test_{i:03d}"] for i in range(1, 9)])
        val = np.array([m[f"trial_val_{i:03d}"] for i in range(1, 9)])
        assert "trial_val_009" not in m and 0 <= m["good_volume"] <= 1
        spreads.append(test.max() - test.min())
        first.append(test[0])
        last.append(test[incumbents(val)[-1]])
        assert m["test_accuracy"] == last[-1]
    assert np.mean(spreads) > 0.1
    assert np.mean(last) >= np.mean(first) - 0.02
