"""The RL control probes: rl_sample_efficiency (CartPole, SB3 vs LQR) and rl_seed_variance."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("stable_baselines3")

import torch  # noqa: E402

from deeplimits.backends import evaluate  # noqa: E402
from deeplimits.limits.rl import rl_sample_efficiency as se  # noqa: E402
from deeplimits.limits.rl import rl_seed_variance as sv  # noqa: E402
from deeplimits.probe import Context  # noqa: E402


def _ctx(profile, contender: str = "x", knob=300, seed: int = 0) -> Context:
    return Context(se.PROBE.id, contender, knob, seed, profile)


def test_linearised_cartpole_matches_gym_near_upright() -> None:
    import gymnasium as gym

    env = gym.make(se.ENV_ID)
    env.reset(seed=0)
    a, b = se.cartpole_model(env)
    state = np.array([0.01, -0.02, 0.005, 0.01])
    env.unwrapped.state = state.copy()
    nxt = env.step(1)[0]  # push right: +force_mag newtons
    predicted = a @ state + b[:, 0] * env.unwrapped.force_mag
    assert np.allclose(nxt, predicted, atol=1e-4)


def test_classical_controllers_solve_with_their_stated_costs() -> None:
    prof = se.PROFILES["smoke"]
    lqr = evaluate(se.PROBE, se.PROBE.contender("lqr"), 300, [0, 1, 2], prof)
    sysid = evaluate(se.PROBE, se.PROBE.contender("lqr_sysid"), 300, [0, 1, 2], prof)
    assert all(r["return"] == 500.0 and r["unsolved"] == 0.0 for r in lqr + sysid)
    assert all(r["env_steps_to_solve"] == se.EPISODE and r["train_steps_to_solve"] == 0.0 for r in lqr)
    assert all(r["env_steps_to_solve"] == prof.sysid_steps + se.EPISODE for r in sysid)


def test_score_finds_the_first_solved_checkpoint_and_censors_the_rest() -> None:
    prof = se.PROFILES["smoke"]
    env = se.Setting(se.ENV_ID, 1000).make()
    a, b = se.cartpole_model(env)
    good = se.bang_bang(se.lqr_gain(a, b * env.unwrapped.force_mag, se.LQR_R))

    def bad(obs: np.ndarray) -> np.ndarray:
        return np.zeros(len(obs), dtype=np.int64)  # always push left: falls within ~10 steps

    task = se.make_task(1000, np.random.default_rng(0), prof)
    solved = se.score(task, se.Curve(((100, bad), (400, good), (1000, bad))), _ctx(prof))
    assert solved["train_steps_to_solve"] == 400 and solved["unsolved"] == 0.0
    assert solved["return"] < 50  # the final policy is scored separately from the first solved one
    never = se.score(task, se.Curve(((100, bad), (1000, bad))), _ctx(prof))
    assert never["unsolved"] == 1.0 and never["env_steps_to_solve"] == 1000 + se.EPISODE  # a lower bound


def test_deep_arm_within_a_tiny_budget_is_censored_at_its_budget() -> None:
    prof = se.PROFILES["smoke"]
    out = evaluate(se.PROBE, se.PROBE.contender("ppo"), 300, [0], prof)[0]
    assert out["unsolved"] == 1.0
    assert 300 <= out["train_steps_to_solve"] < 300 + 256  # stops within one rollout of the cap
    assert out["return"] < se.SOLVED


def test_budget_check_scales_the_training_cap() -> None:
    prof = se.PROFILES["quick"]
    scaled = se.PROBE.budget_scaled(prof)
    task = se.make_task(10_000, np.random.default_rng(0), scaled)
    assert task.public.budget == 40_000


@pytest.mark.slow
def test_ppo_needs_an_order_of_magnitude_more_steps_than_lqr() -> None:
    prof = dataclasses.replace(se.PROFILES["quick"], eval_episodes=5)
    out = evaluate(se.PROBE, se.PROBE.contender("ppo"), 30_000, [0], prof)[0]
    assert out["unsolved"] == 0.0 and out["return"] >= se.SOLVED
    assert out["env_steps_to_solve"] >= 10 * se.EPISODE


# --- rl_seed_variance ---------------------------------------------------------------------------

def test_scores_are_normalised_as_rliable_does() -> None:
    assert np.allclose(sv.normalised([se.RANDOM_RETURN, se.SOLVED]), [0.0, 1.0])


def test_vectorised_iqm_intervals_match_rliable() -> None:
    pytest.importorskip("rliable")
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0.2, 0.1, 6), rng.normal(0.9, 0.1, 4)])  # bimodal, like RL runs
    ours = sv.iqm_intervals(scores[None, :], reps=4000, rng=np.random.default_rng(1))[0]
    point, lo, hi = sv.rliable_iqm(scores, reps=4000, seed=2)
    assert abs(ours[0] - lo) < 0.05 and abs(ours[1] - hi) < 0.05
    assert lo < point < hi


def test_point_estimates_of_few_seeds_claim_improvements_that_intervals_do_not() -> None:
    rng = np.random.default_rng(0)
    scores = np.where(rng.random(10) < 0.4, 1.0, 0.2) + rng.normal(0, 0.05, 10)  # 40% of runs solve: a wide spread
    naive3 = sv.claims(scores, 3, "mean", 400, 200, np.random.default_rng(1)).mean()
    naive100 = sv.claims(scores, 100, "mean", 400, 200, np.random.default_rng(1)).mean()
    remedy3 = sv.claims(scores, 3, "iqm_ci", 400, 200, np.random.default_rng(1)).mean()
    assert naive3 > 0.25 and naive100 < 0.05 and remedy3 < 0.1
    flat = np.full(10, 0.5)  # no spread: no report claims anything
    assert not sv.claims(flat, 3, "mean", 100, 50, np.random.default_rng(1)).any()
    assert not sv.claims(flat, 3, "iqm_ci", 100, 50, np.random.default_rng(1)).any()


def test_seed_variance_scores_pools_of_given_policies() -> None:
    prof = sv.PROFILES["smoke"]
    env = se.Setting(se.ENV_ID, 1000).make()
    a, b = se.cartpole_model(env)
    good = se.bang_bang(se.lqr_gain(a, b * env.unwrapped.force_mag, se.LQR_R))

    def bad(obs: np.ndarray) -> np.ndarray:
        return np.zeros(len(obs), dtype=np.int64)

    task = sv.make_task(3, np.random.default_rng(0), prof)
    ctx = Context(sv.PROBE.id, "ppo", 3, 0, prof)
    out = sv.score(task, sv.Pool((good, bad, bad, good), "mean"), ctx)
    assert out["failed_fraction"] == 0.5 and out["score_sd"] > 0.5
    assert out["false_claim_rate"] > 0.2  # half the runs solve: three seeds often "improve" on three others
    same = sv.score(task, sv.Pool((good,) * 4, "mean"), ctx)
    assert same["false_claim_rate"] == 0.0 and same["failed_fraction"] == 0.0


def test_remedy_reports_the_same_runs_as_the_deep_arm() -> None:
    prof = sv.PROFILES["smoke"]
    deep = evaluate(sv.PROBE, sv.PROBE.contender("ppo"), 3, [0], prof)[0]
    remedy = evaluate(sv.PROBE, sv.PROBE.contender("ppo_iqm_ci"), 3, [0], prof)[0]
    # one pool of runs, two ways of reporting it
    assert deep["score_sd"] == pytest.approx(remedy["score_sd"]) and deep["iqm"] == pytest.approx(remedy["iqm"])
    assert remedy["false_claim_rate"] <= deep["false_claim_rate"]


def test_a_run_is_a_pure_function_of_its_seed_so_the_disk_memo_is_safe(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DEEPLIMITS_CACHE", str(tmp_path))
    fresh = se.train_sb3("ppo", se.Setting(se.ENV_ID, 300), 7, every=301, window=10).points[-1][1]
    sv._run.cache_clear()
    trained = sv._run("ppo", se.ENV_ID, 300, 7, 10)  # trains and keeps it on disk
    sv._run.cache_clear()
    loaded = sv._run("ppo", se.ENV_ID, 300, 7, 10)  # read back from disk
    sv._run.cache_clear()
    assert list((tmp_path / "rl_runs").glob("seed-variance-ppo-*.pkl"))
    for other in (trained, loaded):
        for (name, a), b in zip(fresh.frozen.state_dict().items(), other.frozen.state_dict().values()):
            assert torch.equal(a, b), name


def test_training_leaves_no_logger_folders_behind(tmp_path, monkeypatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    se.train_sb3("ppo", se.Setting(se.ENV_ID, 300), 0, every=100, window=10)
    assert not list(tmp_path.glob("SB3-*"))


def test_a_smaller_cap_is_the_stored_longer_run_cut_at_that_cap(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DEEPLIMITS_CACHE", str(tmp_path))
    key = ("ppo", 3, "test")
    se.remembered_run("t", key, 1024, lambda cap: se.train_sb3("ppo", se.Setting(se.ENV_ID, cap), 3, 256, 0))
    cut = se.remembered_run("t", key, 512, lambda cap: pytest.fail("trained again"))
    fresh = se.train_sb3("ppo", se.Setting(se.ENV_ID, 512), 3, 256, 0)
    assert [p[0] for p in cut.points] == [p[0] for p in fresh.points] == [256, 512]
    for (_, a), (_, b) in zip(cut.points, fresh.points):
        for x, y in zip(a.frozen.state_dict().values(), b.frozen.state_dict().values()):
            assert torch.equal(x, y)


def test_stored_runs_serve_what_they_cover_and_nothing_else(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DEEPLIMITS_CACHE", str(tmp_path))
    calls: list[int] = []

    def runs_to_cap(cap: int) -> se.Curve:
        calls.append(cap)
        return se.Curve(tuple((t, f"policy@{t}") for t in range(100, cap + 1, 100)))

    def stops_at_150(cap: int) -> se.Curve:
        calls.append(cap)
        return se.Curve(((100, "p100"), (150, "p150")))

    assert se.remembered_run("a", ("k",), 300, runs_to_cap).points[-1] == (300, "policy@300")
    assert se.remembered_run("a", ("k",), 200, runs_to_cap).points[-1] == (200, "policy@200")  # cut
    se.remembered_run("a", ("k",), 250, runs_to_cap)  # no checkpoint on this cap: trained
    se.remembered_run("a", ("k",), 600, runs_to_cap)  # longer than the stored run: trained
    assert calls == [300, 250, 600]
    se.remembered_run("b", ("k",), 400, stops_at_150)
    assert se.remembered_run("b", ("k",), 1600, stops_at_150).points[-1] == (150, "p150")  # stopped early
    assert calls == [300, 250, 600, 400]
    for stored in (tmp_path / "rl_runs").glob("a-*.pkl"):
        stored.write_bytes(b"not a pickle")  # a damaged file costs a retraining, nothing else
    assert se.remembered_run("a", ("k",), 300, runs_to_cap).points[-1] == (300, "policy@300")
    assert calls[-1] == 300
