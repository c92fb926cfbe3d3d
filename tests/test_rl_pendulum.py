"""rl_sample_efficiency_pendulum: Pendulum-v1, SB3 SAC/PPO vs MPPI on the known model (machinery and direction)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("stable_baselines3")

from deeplimits.backends import evaluate  # noqa: E402
from deeplimits.limits.rl import rl_sample_efficiency_pendulum as pe  # noqa: E402
from deeplimits.limits.rl.runs import Curve, Setting  # noqa: E402
from deeplimits.probe import Context  # noqa: E402


def _ctx(profile, contender: str = "x", knob=100, seed: int = 0) -> Context:
    return Context(pe.PROBE.id, contender, knob, seed, profile)


def _model() -> pe.PendulumModel:
    return pe.PendulumModel.of(Setting(pe.ENV_ID, 100).make())


def test_model_matches_gym_step() -> None:
    env = Setting(pe.ENV_ID, 100).make()
    env.reset(seed=0)
    th, thdot = 2.5, -3.0
    env.unwrapped.state = np.array([th, thdot])
    obs, reward, *_ = env.step(np.array([1.3], dtype=np.float32))
    new_th, new_thdot, cost = pe.PendulumModel.of(env).step(np.array(th), np.array(thdot), np.array(1.3))
    assert np.allclose([np.cos(new_th), np.sin(new_th), new_thdot], obs, atol=1e-5)
    assert np.isclose(-cost, reward, atol=1e-5)


def test_random_policy_is_near_the_stated_chance() -> None:
    rng = np.random.default_rng(0)
    r = pe.episode_returns(lambda o: rng.uniform(-2, 2, size=(len(o), 1)), np.arange(20)).mean()
    assert abs(r - pe.RANDOM_RETURN) < 200


def test_mppi_solves_at_modest_samples_and_is_deterministic() -> None:
    planner = pe.MPPI(_model(), samples=128, horizon=20, sigma=1.0, lam=1.0, seed=3)
    seeds = np.array([11, 12, 13, 14])
    first = pe.episode_returns(planner, seeds)
    assert first.mean() >= pe.SOLVED
    assert np.array_equal(first, pe.episode_returns(planner, seeds))  # reset replays the same noise


def test_mppi_contender_costs_one_episode() -> None:
    prof = pe.PROFILES["smoke"]
    out = evaluate(pe.PROBE, pe.PROBE.contender("mppi"), 25, [0], prof)[0]
    assert out["train_steps_to_solve"] == 0.0
    assert out["env_steps_to_solve"] == pe.EPISODE


def test_score_finds_the_first_solved_checkpoint_and_censors_the_rest() -> None:
    prof = pe.PROFILES["smoke"]
    good = pe.MPPI(_model(), samples=128, horizon=20, sigma=1.0, lam=1.0, seed=3)

    def bad(obs: np.ndarray) -> np.ndarray:
        return np.zeros((len(obs), 1))  # no torque: the pendulum hangs, far below the solved level

    task = pe.Task(Setting(pe.ENV_ID, 1000), np.array([11, 12]))
    solved = pe.score(task, Curve(((100, bad), (400, good), (1000, bad))), _ctx(prof))
    assert solved["train_steps_to_solve"] == 400 and solved["unsolved"] == 0.0
    assert solved["return"] < pe.SOLVED  # the final policy is scored separately from the first solved one
    never = pe.score(task, Curve(((100, bad), (1000, bad))), _ctx(prof))
    assert never["unsolved"] == 1.0 and never["env_steps_to_solve"] == 1000 + pe.EPISODE  # a lower bound


def test_deep_arm_within_a_tiny_budget_is_censored_at_its_budget() -> None:
    prof = pe.PROFILES["smoke"]
    out = evaluate(pe.PROBE, pe.PROBE.contender("sac"), 25, [0], prof)[0]
    assert out["unsolved"] == 1.0
    assert out["train_steps_to_solve"] == 25
    assert out["return"] < pe.SOLVED


def test_budget_check_scales_the_training_cap() -> None:
    scaled = pe.PROBE.budget_scaled(pe.PROFILES["quick"])
    task = pe.make_task(2_000, np.random.default_rng(0), scaled)
    assert task.public.budget == 8_000


def test_a_smaller_cap_is_the_stored_longer_run_cut_at_that_cap(tmp_path, monkeypatch) -> None:
    import torch

    monkeypatch.setenv("DEEPLIMITS_CACHE", str(tmp_path))
    from deeplimits.limits.rl.runs import remembered_run

    def train(cap: int) -> Curve:
        return pe.train_sb3("sac", Setting(pe.ENV_ID, cap), 5, 50, 0)

    remembered_run("t", ("sac", 5), 300, train)  # trained and kept on disk
    cut = remembered_run("t", ("sac", 5), 150, lambda cap: pytest.fail("trained again"))  # cut from it
    fresh = pe.train_sb3("sac", Setting(pe.ENV_ID, 150), 5, 50, 0)
    assert [p[0] for p in cut.points] == [p[0] for p in fresh.points] == [50, 100, 150]
    for (_, a), (_, b) in zip(cut.points, fresh.points):
        for x, y in zip(a.frozen.state_dict().values(), b.frozen.state_dict().values()):
            assert torch.equal(x, y)


def test_taking_checkpoints_does_not_change_the_run() -> None:
    import torch

    sparse = pe.train_sb3("sac", Setting(pe.ENV_ID, 200), 4, 200, 0)
    dense = pe.train_sb3("sac", Setting(pe.ENV_ID, 200), 4, 50, 0)  # three more frozen copies on the way
    last_sparse, last_dense = sparse.points[-1][1].frozen, dense.points[-1][1].frozen
    for x, y in zip(last_sparse.state_dict().values(), last_dense.state_dict().values()):
        assert torch.equal(x, y)
