"""Reasoning II (issue 13): constraints and sat — solvers, bad input, and the direction of the effects."""

from __future__ import annotations

import numpy as np
import pytest

from deeplimits.backends import evaluate
from deeplimits.probe import task_rng

pytest.importorskip("highspy")
pytest.importorskip("pysat")

from deeplimits.limits.reasoning import constraints, sat  # noqa: E402


# --- constraints ----------------------------------------------------------------------------
def test_lp_solver_is_feasible_and_optimal_at_the_loose_end() -> None:
    rng = np.random.default_rng(0)
    A, c = rng.uniform(0, 1, (4, 5)), rng.uniform(0.5, 1.5, 5)
    lp = constraints.PackingLP(A, c)
    assert np.allclose(lp.solve(A.sum(1)), 1.0)  # t = 0: x = 1 is optimal
    b = 0.5 * A.sum(1)
    x = lp.solve(b)
    assert constraints.violations(A, b[None], x[None])[0] <= constraints.TOL
    assert x @ c < c.sum()


def test_infeasible_or_malformed_lp_gets_a_clear_error() -> None:
    A = np.ones((2, 3))
    lp = constraints.PackingLP(A, np.ones(3))
    with pytest.raises(ValueError, match="infeasible"):
        lp.solve(np.array([-1.0, 1.0]))  # Ax <= -1 with x >= 0
    with pytest.raises(ValueError, match="finite"):
        lp.solve(np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match="A \\[m, d\\]"):
        constraints.PackingLP(np.ones(3), np.ones(3))


def test_projection_makes_a_point_feasible() -> None:
    rng = np.random.default_rng(1)
    A = rng.uniform(0, 1, (3, 4))
    b = 0.4 * A.sum(1)
    x = constraints.project_l1(A, b, np.ones(4))
    assert constraints.violations(A, b[None], x[None])[0] <= constraints.TOL


def test_constraints_solver_solves_every_instance_and_mlp_does_not_once_constraints_bind() -> None:
    probe, prof = constraints.PROBE, constraints.PROFILES["smoke"]
    solver = evaluate(probe, probe.contender("highs"), 0.5, [0, 1, 2], prof)
    assert all(m["solved_rate"] == 1.0 and m["max_violation"] <= constraints.TOL for m in solver)
    mlp = evaluate(probe, probe.contender("mlp_mse"), 0.5, [0, 1, 2], prof)
    assert np.mean([m["solved_rate"] for m in mlp]) < 0.5
    projected = evaluate(probe, probe.contender("mlp_projected"), 0.5, [0, 1, 2], prof)
    assert all(m["feasible_rate"] == 1.0 for m in projected)


def test_constraints_task_hides_the_test_optima() -> None:
    prof = constraints.PROFILES["smoke"]
    task = constraints.make_task(0.5, task_rng("constraints", 0.5, 0), prof)
    assert task.hidden.shape == (prof.n_test, prof.n_vars)
    assert task.public.b_test.shape == (prof.n_test, prof.n_cons)


# --- sat ----------------------------------------------------------------------------------------
def test_sr_pairs_differ_in_one_literal_and_have_the_right_labels() -> None:
    rng = np.random.default_rng(0)
    for n in (3, 6, 10):
        good, bad = sat.sr_pair(n, rng)
        assert good[:-1] == bad[:-1] and good[-1][1:] == bad[-1][1:] and good[-1][0] == -bad[-1][0]
        ok, assignment = sat.solve(good, n)
        assert ok and sat.satisfies(good, assignment)
        assert sat.solve(bad, n) == (False, None)


@pytest.mark.parametrize("cnf, match", [((), "empty CNF"), (((1, 0),), "bad literal"), (((1,), ()), "empty clause"),
                                        (((1, 5),), "beyond")])
def test_bad_cnf_gets_a_clear_error(cnf: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sat.solve(cnf, 3)


def test_minisat_decides_everything_and_the_network_certifies_no_unsat() -> None:
    probe, prof = sat.PROBE, sat.PROFILES["smoke"]
    solver = evaluate(probe, probe.contender("minisat"), 6, [0, 1, 2], prof)
    assert all(m["accuracy"] == 1.0 and m["decoded_rate"] == 1.0 and m["unsat_certified"] == 1.0 for m in solver)
    net = evaluate(probe, probe.contender("neurosat_mlp"), 6, [0, 1, 2], prof)
    assert all(m["unsat_certified"] == 0.0 and 0.0 <= m["accuracy"] <= 1.0 for m in net)


# --- causal -------------------------------------------------------------------------------------
pytest.importorskip("causallearn")

from deeplimits.limits.reasoning import causal  # noqa: E402


def test_sem_variances_match_and_pc_recovers_the_graph_where_correlation_does_not() -> None:
    w = causal.weights(2.0)
    data = causal.sample(w, 3000, np.random.default_rng(0))
    assert np.allclose(data.var(0), causal.observational_var(w), rtol=0.15)
    graphs = causal.causal_graphs(data, 0.01, 0.1)
    truth = causal.skeleton(w)
    assert causal.shd(graphs["pc"] != 0, truth) <= 1
    assert causal.shd(graphs["corr"], truth) >= 3  # chain and fork give spurious correlation edges
    parents = {causal.NAMES[i] for i in causal.parents_in(graphs["pc"], causal.TARGET)}
    assert parents == {"P1", "P2"}


@pytest.mark.parametrize("data, match", [(np.full((50, 3), np.nan), "finite"), (np.ones((50, 3)), "constant"),
                                         (np.zeros((3, 3)), "10 rows")])
def test_bad_data_for_causal_discovery_gets_a_clear_error(data: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        causal.check_data(data)


def test_mlp_leans_on_the_child_and_breaks_under_intervention_where_pc_parents_hold() -> None:
    import dataclasses

    probe = causal.PROBE
    prof = dataclasses.replace(causal.PROFILES["smoke"], epochs=40, patience=10)
    net = evaluate(probe, probe.contender("mlp"), 3.0, [0, 1, 2], prof)
    pc = evaluate(probe, probe.contender("pc_parents"), 3.0, [0, 1, 2], prof)
    assert np.mean([m["obs_error_ratio"] for m in net]) < np.mean([m["obs_error_ratio"] for m in pc])
    assert min(m["int_error_ratio"] for m in net) > 2 * max(m["int_error_ratio"] for m in pc)


# --- causal (b): influencers --------------------------------------------------------------------
from deeplimits.limits.reasoning import influencers  # noqa: E402


def test_followers_copy_their_influencer_and_a_perfect_ranking_scores_one() -> None:
    prof = influencers.PROFILES["quick"]
    votes, chosen = influencers.roll_calls(2000, prof, np.random.default_rng(0))
    agree = (votes[:, :, None] == votes[:, None, chosen]).mean(0)  # [member, influencer]
    best = np.delete(agree.max(1), chosen)
    assert (best > 0.7).mean() > 0.6  # most members copy someone (follow 0.8, copy 0.6 -> agreement 0.8)
    task = influencers.Task(influencers.VotesPublic(votes, len(chosen)), chosen)
    perfect = np.isin(np.arange(prof.n_voters), chosen).astype(float)
    assert influencers.score(task, perfect, None)["precision_at_k"] == 1.0
    assert influencers.score(task, -perfect, None)["precision_at_k"] == 0.0


@pytest.mark.parametrize("votes, k, match", [(np.full((10, 5), 2), 2, "0 \\(no\\) or 1"), (np.zeros((2, 5)), 2, "≥ 4"),
                                             (np.zeros((10, 5)), 5, "between 1")])
def test_bad_roll_calls_get_a_clear_error(votes: np.ndarray, k: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        influencers.check_votes(votes, k)


def test_graphical_lasso_finds_the_influencers_from_enough_roll_calls() -> None:
    probe, prof = influencers.PROBE, influencers.PROFILES["smoke"]
    res = evaluate(probe, probe.contender("glasso"), 200, [0, 1, 2], prof)
    assert all(m["precision_at_k"] == 1.0 for m in res)


# --- hidden_entities -----------------------------------------------------------------------------
pytest.importorskip("statsmodels")

from deeplimits.limits.reasoning import hidden_entities  # noqa: E402


def test_state_space_model_recovers_the_drift_and_predicts_near_the_optimum() -> None:
    prof = hidden_entities.PROFILES["quick"]
    landings, thrower = hidden_entities.episodes(60, 0.0, prof, np.random.default_rng(0))
    assert np.allclose(np.diff(thrower, axis=1).std(), prof.drift, rtol=0.1)
    spread2, drift2 = hidden_entities.fit_local_level(landings)
    assert abs(spread2 - prof.spread**2) < 0.15 and 0.3 * prof.drift**2 < drift2 < 3 * prof.drift**2


@pytest.mark.parametrize("y, match", [(np.ones((3, 5)), "more than window"), (np.full((3, 30), np.nan), "finite"),
                                      (np.ones(30), "episodes × steps")])
def test_bad_observations_get_a_clear_error(y: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        hidden_entities.check_series(y, 10)


def test_nets_break_where_the_thrower_is_new_and_the_state_space_model_does_not() -> None:
    probe, prof = hidden_entities.PROBE, hidden_entities.PROFILES["smoke"]
    seeds = [0, 1, 2]
    ssm = {k: evaluate(probe, probe.contender("state_space"), k, seeds, prof) for k in (0.0, 8.0)}
    assert all(m["error_ratio"] < 1.4 for ms in ssm.values() for m in ms)
    lstm = evaluate(probe, probe.contender("lstm"), 8.0, seeds, prof)
    assert min(m["error_ratio"] for m in lstm) > 2 * max(m["error_ratio"] for m in ssm[8.0])
    revin = evaluate(probe, probe.contender("mlp_revin"), 8.0, seeds, prof)
    assert np.mean([m["error_ratio"] for m in revin]) < 1.5
