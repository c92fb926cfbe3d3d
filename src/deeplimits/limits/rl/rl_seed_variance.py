"""RL seed variance: with few seeds, runs of one agent "improve" on themselves.

Claim: a deep RL run's outcome depends so much on its random seed that a report on a few seeds
    misleads: two groups of n runs of the same agent with the same hyperparameters, which differ in
    nothing but their seeds, often show what a point-estimate report would call an improvement,
    while rliable's recommended report (IQM with 95% stratified-bootstrap intervals) at the same n
    rarely claims one.
    What "holds" means here. The contenders are an agent together with its way of reporting: the
    deep arms report the usual way (the mean of n seeds; the newer group "improves" when its mean
    is higher by at least δ = 0.1 of the random-to-solved score range), the remedy reports PPO's same
    runs as rliable recommends (a claim only when the two IQM intervals do not overlap). There is
    no true difference, so every claim is false. Rule: threshold on the false-claim rate, success
    ≤ 0.05 (the error rate a 95% claim promises). The limit holds at the numbers of seeds n where
    every deep arm's false-claim rate is clearly above 0.05 while the remedy's is clearly below;
    the positive control is the same report at the easy end (n = 100 seeds: enough runs make a
    point estimate trustworthy). Breaking point: the largest n at which it holds. A weakness left
    open: an arm whose runs learn nothing has no spread, makes no false claims and so clears the
    limit; a control on the pool's IQM ("the runs learn") would catch it, but the contract's rule 4
    keeps the control on the claim's own metric. The budget check
    trains every run with 4× the steps: if the runs then all solve the task, their spread and the
    false claims vanish, and the verdict says the limit moves with compute.
Source: seeds/003_f388986fd4a90ec9.txt (Ramsundar, "What Can't Deep Learning Do?": heavy dependence
    on the random seed; RL is finicky), seeds/000_aa28131255717d31.txt (Vorhies, "Things that Aren't
    Working in Deep Learning", quoting Irpan 2018); Henderson et al. 2018, "Deep Reinforcement
    Learning that Matters"; Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice"
    (rliable).
Setup: gymnasium CartPole-v1. A trial trains a pool of `runs` runs of one agent (Stable-Baselines3,
    rl-baselines3-zoo hyperparameters, `steps` environment steps each: quick 3,000, mid-training for
    PPO, whose zoo run solves at about 16,000; the budget check's 12,000 stays unsolved too), seeded by
    the agent, the trial's seed index and the run index only, so the pool is the same at every knob
    value and for the remedy, which reports PPO's runs. Each run is trained once and kept on disk
    (`runs.remembered_run` in the deeplimits cache folder, keyed by the training code and library
    versions): every knob value, the remedy and every worker process reuse it. The quick profile is cut
    by cost: the budget check retrains every pool at 4× the steps, so 5 pools of 10 runs is what fits in
    5 minutes on 2 cores. The probe evaluates each run's final greedy policy on `eval_episodes` episodes
    only it knows and normalises the mean return as rliable does, (R − 22.8) / (475 − 22.8): a random
    policy scores 0, the solved level 1. Then `papers` resampled "papers": two groups of n runs drawn
    with replacement from the pool (the pool stands for the agent's distribution of outcomes, so n may
    exceed the pool), each reported by the contender's protocol. Knob: n, the seeds per group.
Deep contender: PPO and A2C (Stable-Baselines3, zoo hyperparameters for CartPole-v1, CPU, one thread),
    each reported by the mean of n seeds. DQN, the other zoo agent, is left out for cost: its 128
    gradient steps per 256 env steps make a pool several times dearer. A2C's zoo settings are tuned for
    5e5 steps, and at 3,000 steps its pools are barely above random (IQM 0.02-0.11), which makes its
    reports look steadier than PPO's (see the weakness above).
Remedy: the same PPO runs reported with rliable's IQM and 95% percentile stratified-bootstrap intervals
    (one task: runs resampled with replacement), an improvement claimed only when the newer group's
    interval lies wholly above the other's. The pool's own IQM and interval come from
    rliable.library.get_interval_estimates; the per-paper intervals (thousands per trial) from a
    vectorised numpy copy of the same percentile bootstrap, checked against rliable in the tests.
Metric: false_claim_rate = fraction of resampled papers whose report claims an improvement (lower is
    better; a coin flip claims half the time). Also per pool: IQM of normalised scores with its
    rliable 95% interval, the score's spread across runs, and failed_fraction, the runs whose final
    policy does not reach the solved level (475).
Reference figure: Henderson et al. 2018: TRPO on HalfCheetah, 10 seeds split into two groups of 5 with
    the same hyperparameters: t = −9.0916, p = 0.0016 (a t-test over the training curves, Fig. 5);
    Irpan 2018: NAF on Pendulum, 3 of 10 seeds failed (a 30% failure rate); Agarwal et al. 2021:
    3 to 10 runs per task are prevalent in deep RL papers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from deeplimits.limits.rl import rl_sample_efficiency
from deeplimits.limits.rl.rl_sample_efficiency import (
    ENV_ID,
    RANDOM_RETURN,
    SOLVED,
    ZOO_A2C,
    ZOO_PPO,
    episode_returns,
    train_sb3,
)
from deeplimits.limits.rl.runs import Policy, Setting, code_key, remembered_run
from deeplimits.probe import (
    Contender,
    Context,
    Knob,
    Metric,
    Probe,
    Profile,
    Reference,
    Task,
    Threshold,
    stable_int,
)

DELTA = 0.1  # the improvement (normalised score: a tenth of random-to-solved) a point-estimate report claims
SCORE_LO = (0.0 - RANDOM_RETURN) / (SOLVED - RANDOM_RETURN)
SCORE_HI = (500.0 - RANDOM_RETURN) / (SOLVED - RANDOM_RETURN)


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedVarianceProfile(Profile):
    steps: int = 3_000  # env steps per run, mid-training for PPO (the budget check scales it 4x)
    runs: int = 10  # runs per pool: same agent and hyperparameters, seeds differ
    eval_episodes: int = 10
    papers: int = 400  # resampled pairs of n-seed groups per trial
    reps: int = 500  # bootstrap resamples per interval
    stop_window: int = 10  # a run stops early once its last training episodes average ≥ 475


PROFILES = {
    "smoke": SeedVarianceProfile("smoke", knob=(3, 30), seeds=3, steps=256, runs=3, eval_episodes=2, papers=50,
                                 reps=100),
    "quick": SeedVarianceProfile("quick", knob=(3, 5, 10, 30, 100), seeds=5),
    "paper": SeedVarianceProfile("paper", knob=(2, 3, 5, 10, 30, 100), seeds=10, steps=20_000, runs=50,
                                 eval_episodes=100, papers=2000, reps=2000),
}


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PoolSpec:
    """The learner's view: the environment, the steps per run and how many runs to train."""

    env_id: str
    steps: int
    runs: int


@dataclass(frozen=True)
class Pool:
    """A contender's output: the final greedy policy of each run and how it reports them."""

    policies: tuple[Policy, ...]
    protocol: str  # "mean": point estimate with margin DELTA; "iqm_ci": rliable's IQM intervals must not overlap


def make_task(n: int, rng: np.random.Generator, profile: SeedVarianceProfile) -> Task:
    eval_seeds = rng.integers(0, 2**31 - 1, size=profile.eval_episodes)
    resample_seed = int(rng.integers(0, 2**31 - 1))  # the papers drawn from the pool: the same for every contender
    return Task(PoolSpec(ENV_ID, profile.steps, profile.runs), (eval_seeds, resample_seed))


def normalised(returns: np.ndarray) -> np.ndarray:
    return (np.asarray(returns, float) - RANDOM_RETURN) / (SOLVED - RANDOM_RETURN)


def iqm_intervals(groups: np.ndarray, reps: int, rng: np.random.Generator, chunk: int = 25) -> np.ndarray:
    """95% percentile-bootstrap intervals of the IQM of each group [..., n] -> [..., 2] (lo, hi).

    rliable's percentile bootstrap (one task, runs resampled with replacement), vectorised: rliable's
    get_interval_estimates takes about a second a call, and a trial needs thousands."""
    from scipy.stats import trim_mean

    flat = groups.reshape(-1, groups.shape[-1])
    out = np.empty((len(flat), 2))
    n = flat.shape[1]
    for start in range(0, len(flat), chunk):
        part = flat[start:start + chunk]
        idx = rng.integers(0, n, size=(len(part), reps, n))
        boot = trim_mean(np.take_along_axis(part[:, None, :], idx, axis=2), 0.25, axis=2)
        out[start:start + chunk] = np.percentile(boot, [2.5, 97.5], axis=1).T
    return out.reshape(*groups.shape[:-1], 2)


def claims(scores: np.ndarray, n: int, protocol: str, papers: int, reps: int, rng: np.random.Generator) -> np.ndarray:
    """For `papers` resampled pairs (old, new) of n runs each: does the report claim that new improves on old?"""
    groups = scores[rng.integers(0, len(scores), size=(papers, 2, n))]
    if protocol == "mean":
        return groups[:, 1].mean(-1) - groups[:, 0].mean(-1) >= DELTA
    ci = iqm_intervals(groups, reps, rng)
    return ci[:, 1, 0] > ci[:, 0, 1]  # the new group's interval wholly above the old one's


def rliable_iqm(scores: np.ndarray, reps: int, seed: int) -> tuple[float, float, float]:
    """The pool's IQM and 95% stratified-bootstrap interval from rliable itself."""
    from rliable import library, metrics

    saved = np.random.get_state()
    np.random.seed(seed % 2**32)  # rliable 1.2 resamples with the global np.random, whatever random_state says
    try:
        point, interval = library.get_interval_estimates(
            {"pool": scores[:, None]}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=reps)
    finally:
        np.random.set_state(saved)
    return float(point["pool"][0]), float(interval["pool"][0, 0]), float(interval["pool"][1, 0])


def score(task: Task, pool: Pool, ctx: Context) -> dict[str, float]:
    prof: SeedVarianceProfile = ctx.profile
    eval_seeds, resample_seed = task.hidden
    returns = np.array([episode_returns(p, eval_seeds).mean() for p in pool.policies])
    scores = normalised(returns)
    rng = np.random.default_rng(resample_seed)
    made = claims(scores, int(ctx.knob), pool.protocol, prof.papers, prof.reps, rng)
    iqm, lo, hi = rliable_iqm(scores, prof.reps, resample_seed)
    return {"false_claim_rate": float(made.mean()), "iqm": iqm, "iqm_lo": lo, "iqm_hi": hi,
            "score_sd": float(scores.std(ddof=1)), "failed_fraction": float((returns < SOLVED).mean())}


# --- contenders: a pool of SB3 runs, reported two ways -----------------------------------------
@functools.lru_cache(maxsize=512)
def _run(algo: str, env_id: str, steps: int, seed: int, window: int) -> Policy:
    # a run is a pure function of its arguments (CPU, one thread): every knob value, the remedy, the worker processes
    # and later runs share it through the RL runs kept on disk (an in-process cache trained each pool once per worker)
    key = (algo, env_id, steps, seed, window, code_key(rl_sample_efficiency))
    curve = remembered_run(f"seed-variance-{algo}", key, steps,
                           lambda cap: train_sb3(algo, Setting(env_id, cap), seed, every=cap + 1, window=window))
    return curve.points[-1][1]


def train_pool(algo: str, spec: PoolSpec, ctx: Context) -> tuple[Policy, ...]:
    window = ctx.profile.stop_window
    return tuple(_run(algo, spec.env_id, spec.steps, stable_int("rl_seed_variance", algo, ctx.seed, i) % (2**31 - 1),
                      window) for i in range(spec.runs))


def ppo(spec: PoolSpec, ctx: Context) -> Pool:
    return Pool(train_pool("ppo", spec, ctx), "mean")


def a2c(spec: PoolSpec, ctx: Context) -> Pool:
    return Pool(train_pool("a2c", spec, ctx), "mean")


def ppo_iqm_ci(spec: PoolSpec, ctx: Context) -> Pool:
    return Pool(train_pool("ppo", spec, ctx), "iqm_ci")


# --- the probe ------------------------------------------------------------------------------
TUNING_PPO = ("rl-baselines3-zoo's tuned hyperparameters for PPO on CartPole-v1 (hyperparams/ppo.yml, HEAD 22e3ff2: "
              f"{', '.join(f'{k} {v}' for k, v in ZOO_PPO.items() if k != 'n_timesteps')}; lr and clip linear "
              "schedules over the zoo's 1e5 steps), found by the zoo's search on this environment; no search of ours")
TUNING_A2C = ("rl-baselines3-zoo's tuned hyperparameters for A2C on CartPole-v1 (hyperparams/a2c.yml, HEAD 22e3ff2: "
              f"n_envs {ZOO_A2C['n_envs']}, ent_coef {ZOO_A2C['ent_coef']}, SB3 defaults otherwise), found by the "
              "zoo on this environment; no search of ours")

PROBE = Probe(
    id="rl_seed_variance",
    family="rl",
    claim="Deep RL outcomes depend on the seed so much that few-seed reports mislead: two groups of a few runs "
          "of the same agent and hyperparameters often show a point-estimate 'improvement', which rliable's IQM "
          "with stratified-bootstrap intervals does not claim.",
    sources=("seeds/003_f388986fd4a90ec9.txt", "seeds/000_aa28131255717d31.txt",
             "Henderson et al. 2018, Deep Reinforcement Learning that Matters (AAAI)",
             "Agarwal et al. 2021, Deep RL at the Edge of the Statistical Precipice (NeurIPS; rliable)",
             "Irpan 2018, Deep Reinforcement Learning Doesn't Work Yet"),
    version=2,
    knob=Knob("n", "runs (seeds) per group in a report", unit="seeds", harder="decreasing", log_scale=True,
              validate=lambda v: isinstance(v, int) and v >= 2),
    metrics=(
        Metric("false_claim_rate", "fraction of resampled reports of two same-agent groups that claim an "
               "improvement", direction="lower", chance=0.5, lo=0.0, hi=1.0),
        Metric("iqm", "IQM of the pool's normalised scores (rliable)", lo=SCORE_LO, hi=SCORE_HI),
        Metric("iqm_lo", "lower end of the pool IQM's 95% stratified-bootstrap interval (rliable)", lo=SCORE_LO,
               hi=SCORE_HI),
        Metric("iqm_hi", "upper end of the pool IQM's 95% interval", lo=SCORE_LO, hi=SCORE_HI),
        Metric("score_sd", "standard deviation of the normalised score across the pool's runs", direction="lower",
               lo=0.0, hi=SCORE_HI - SCORE_LO),
        Metric("failed_fraction", "runs whose final policy averages below 475", direction="lower", lo=0.0, hi=1.0),
    ),
    rule=Threshold("false_claim_rate", success=0.05),
    profiles=PROFILES,
    make_task=make_task,
    score=score,
    contenders=(
        Contender("ppo", "deep", ppo, "SB3 PPO runs, reported by the mean of n seeds", tuning=TUNING_PPO),
        Contender("a2c", "deep", a2c, "SB3 A2C runs, reported by the mean of n seeds", tuning=TUNING_A2C),
        Contender("ppo_iqm_ci", "remedy", ppo_iqm_ci, "the same PPO runs reported with rliable's IQM and 95% "
                  "stratified-bootstrap intervals (claim only when they do not overlap)"),
    ),
    references=(
        Reference("Henderson et al. 2018, Fig. 5", "TRPO, HalfCheetah-v1, two groups of 5 seeds, same hyperparameters",
                  "t = −9.0916, p = 0.0016 (the groups look like different algorithms)", "verbatim"),
        Reference("Irpan 2018", "NAF, Pendulum, 10 seeds, same hyperparameters",
                  "3 of 10 runs failed (a 30% failure rate)", "verbatim", points=((10, 0.3),),
                  metric="failed_fraction"),
        Reference("Agarwal et al. 2021", "deep RL practice", "3-10 runs per task are prevalent", "verbatim"),
    ),
    budget=lambda p: (f"pools of {p.runs} SB3 runs × {p.steps:,} env steps (zoo hyperparameters), "
                      f"{p.papers} resampled reports, improvement margin δ = {DELTA}"),
    budget_fields=("steps",),
    fit=None,  # the spread of outcomes is the claim: there is no training set to fit
    requires=("gymnasium", "stable_baselines3", "rliable", "scipy"),
    extra="rl",
)
