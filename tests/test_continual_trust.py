"""Continual, trust and common-sense probes: machinery, bad input, and the direction of each effect."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from deeplimits import UsageError
from deeplimits.backends import evaluate
from deeplimits.probe import Context, task_rng


def mean(rows: list[dict[str, float]], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


# --- catastrophic_forgetting ------------------------------------------------------------------
def test_forgetting_class_il_falls_and_replay_keeps_it(one_thread: None) -> None:
    from deeplimits.limits.continual.catastrophic_forgetting import PROBE

    prof = dataclasses.replace(PROBE.profile("smoke"), epochs=4, n_train=40, n_test=20, n_perm_train=10)
    fine = evaluate(PROBE, PROBE.contender("finetune_adam"), 2, [0, 1, 2], prof)
    replay = evaluate(PROBE, PROBE.contender("replay"), 2, [0, 1, 2], prof)
    assert mean(fine, "first_task_accuracy") < 0.3  # task 1 is overwritten by task 2 in class-IL
    assert mean(fine, "bwt") < -0.5
    assert mean(replay, "accuracy") > mean(fine, "accuracy") + 0.2
    assert mean(fine, "task_il_accuracy") > mean(fine, "accuracy") + 0.2  # task identity helps (Task-IL > Class-IL)


def test_forgetting_score_rejects_a_short_output() -> None:
    from deeplimits.limits.continual.catastrophic_forgetting import PROBE, score

    prof = PROBE.profile("smoke")
    task = PROBE.make_task(2, task_rng(PROBE.id, 2, 0), prof)
    with pytest.raises(ValueError, match="predictions after each"):
        score(task, {"class_il": [[]]}, Context(PROBE.id, "x", 2, 0, prof))


# --- online_learning ------------------------------------------------------------------------
def test_stream_reveals_labels_only_after_a_prediction() -> None:
    from deeplimits.limits.continual.online_learning import Stream

    stream = Stream([{0: 1.0, 1: 2.0, 2: 3.0}] * 3, (1, 0, 1).__getitem__)
    it = iter(stream)
    next(it)
    with pytest.raises(UsageError, match="reveal"):
        next(it)  # no prediction committed for sample 0
    with pytest.raises(UsageError, match="empty"):
        next(iter(Stream([], ().__getitem__)))


def test_online_learners_beat_chance_and_drift_costs_accuracy(one_thread: None) -> None:
    pytest.importorskip("river")
    from deeplimits.limits.continual.online_learning import PROBE

    prof = PROBE.profile("smoke")
    still = evaluate(PROBE, PROBE.contender("online_logreg"), 0, [0, 1, 2], prof)
    drift = evaluate(PROBE, PROBE.contender("online_logreg"), 2, [0, 1, 2], prof)
    assert mean(still, "accuracy") > 0.75
    assert mean(drift, "recovery") < mean(still, "recovery")


# --- embedding_bias -------------------------------------------------------------------------
def test_weat_effect_size_and_bad_input() -> None:
    from deeplimits.limits.trust.embedding_bias import A_WORDS, B_WORDS, X_WORDS, Y_WORDS, weat

    rng = np.random.default_rng(0)
    g = np.eye(8)[0]
    vectors = {w: rng.normal(size=8) * 0.1 for w in X_WORDS + Y_WORDS}
    vectors |= {w: g + rng.normal(size=8) * 0.1 for w in A_WORDS} | {w: -g + rng.normal(size=8) * 0.1 for w in B_WORDS}
    biased = {w: v + (g if w in X_WORDS else -g if w in Y_WORDS else 0) for w, v in vectors.items()}
    d, p = weat(biased, permutations=500)
    assert d > 1.5 and p < 0.01
    d0, _ = weat(vectors, permutations=500)
    assert abs(d0) < 1.2  # no planted association: noise only
    with pytest.raises(UsageError, match="none of the target X words"):
        weat({w: v for w, v in vectors.items() if w not in X_WORDS})


def test_embedding_bias_rejects_an_empty_corpus(one_thread: None) -> None:
    pytest.importorskip("gensim")
    from deeplimits.limits.trust.embedding_bias import DEFINITIONAL, FEMALE, MALE, PROBE, Corpus

    ctx = Context(PROBE.id, "skipgram", 0.0, 0, PROBE.profile("smoke"))
    with pytest.raises(UsageError, match="empty"):
        PROBE.contender("skipgram").fn(Corpus([], DEFINITIONAL, MALE + FEMALE, 0), ctx)
    corpus = Corpus([["w01", "w02", "w03"]] * 50, DEFINITIONAL, MALE + FEMALE, 0)  # none of the target words
    vectors = PROBE.contender("ppmi_svd").fn(corpus, ctx)
    task = PROBE.make_task(0.0, task_rng(PROBE.id, 0.0, 0), PROBE.profile("smoke"))
    with pytest.raises(UsageError, match="none of the"):
        PROBE.score(task, vectors, ctx)


def test_hard_debias_removes_the_gender_component() -> None:
    from deeplimits.limits.trust.embedding_bias import DEFINITIONAL, FEMALE, MALE, hard_debias

    rng = np.random.default_rng(1)
    g = np.eye(6)[0]
    vectors = {a: g + rng.normal(size=6) * 0.05 for a, _ in DEFINITIONAL}
    vectors |= {b: -g + rng.normal(size=6) * 0.05 for _, b in DEFINITIONAL}
    vectors["engineer"] = g + rng.normal(size=6)
    out = hard_debias(vectors, DEFINITIONAL, MALE + FEMALE)
    assert abs(out["engineer"] @ g) < 0.1
    assert np.allclose(out["he"] + out["she"], (out["he"] + out["she"]) - ((out["he"] + out["she"]) @ g) * g,
                       atol=0.1)  # equalised: the pair is symmetric about the neutral axis


def test_embeddings_absorb_a_strong_planted_bias(one_thread: None) -> None:
    pytest.importorskip("gensim")
    from deeplimits.limits.trust.embedding_bias import PROBE

    prof = PROBE.profile("smoke")
    biased = evaluate(PROBE, PROBE.contender("ppmi_svd"), 0.8, [0, 1, 2], prof)
    fair = evaluate(PROBE, PROBE.contender("ppmi_svd"), 0.0, [0, 1, 2], prof)
    assert mean(biased, "abs_effect_size") > 1.2
    assert mean(biased, "abs_effect_size") > mean(fair, "abs_effect_size") + 0.5


# --- data_bias ------------------------------------------------------------------------------
def test_hiring_data_has_equal_base_rates_and_biased_history() -> None:
    from deeplimits.limits.trust.data_bias import PROBE, people

    x, truth, hist, a = people(20_000, 0.5, PROBE.profile("quick"), np.random.default_rng(0))
    assert abs(truth[a == 1].mean() - truth[a == 0].mean()) < 0.03
    assert hist[a == 1].mean() < 0.7 * truth[a == 1].mean()
    assert (hist[a == 0] == truth[a == 0]).all()


def test_biased_labels_are_reproduced_and_the_dp_remedy_helps(one_thread: None) -> None:
    pytest.importorskip("fairlearn")
    from deeplimits.limits.trust.data_bias import PROBE

    prof = PROBE.profile("smoke")
    logistic = evaluate(PROBE, PROBE.contender("logistic"), 0.6, [0, 1, 2], prof)
    fair = evaluate(PROBE, PROBE.contender("fair_dp"), 0.6, [0, 1, 2], prof)
    assert mean(logistic, "minority_selection") < 0.3  # the truth is 0.5
    assert mean(fair, "worst_group_accuracy") > mean(logistic, "worst_group_accuracy") + 0.1
    assert mean(fair, "dp_difference") < mean(logistic, "dp_difference")


# --- common_sense ---------------------------------------------------------------------------
def test_tracker_is_exact_and_stories_need_their_facts() -> None:
    from deeplimits.limits.reasoning.common_sense import PROBE, World, tracker

    prof = dataclasses.replace(PROBE.profile("smoke"), n_test=40)
    for facts in (1, 2, 3):
        task = PROBE.make_task(facts, task_rng(PROBE.id, facts, 0), prof)
        out = tracker(task.public, Context(PROBE.id, "tracker", facts, 0, prof))
        assert PROBE.score(task, out, None) == {"accuracy": 1.0, "long_accuracy": 1.0}
        assert max(len(s) for s in task.public.long_stories) > max(len(s) for s in task.public.train_stories)
    world = World()
    for s in ("mary went to the kitchen", "mary got the milk", "mary moved to the garden", "mary left the milk"):
        world.apply(s.split())
    assert world.answer(["where", "is", "milk"]) == "garden"
    assert world.answer(["where", "was", "milk", "before", "garden"]) == "kitchen"
    with pytest.raises(UsageError, match="parse"):
        world.apply("the milk is cold".split())


def test_common_sense_rejects_no_stories() -> None:
    from deeplimits.limits.reasoning.common_sense import PROBE, Stories

    empty = Stories([], [], [], [], [], [], [], 0)
    with pytest.raises(UsageError, match="no stories"):
        PROBE.contender("lstm").fn(empty, Context(PROBE.id, "lstm", 1, 0, PROBE.profile("smoke")))
