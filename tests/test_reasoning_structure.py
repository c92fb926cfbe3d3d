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
