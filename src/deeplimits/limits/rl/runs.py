"""What the RL probes share: a learner's view (`Setting`), its output (`Curve`: checkpoints of a
learning run), scoring a curve, Stable-Baselines3 checkpoints and logging, and runs kept on disk.

Used by rl_sample_efficiency (CartPole), rl_sample_efficiency_pendulum and rl_seed_variance; a file of
its own so that each of them stays one limit per file.
"""

from __future__ import annotations

import functools
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from deeplimits.datasets import cache_dir
from deeplimits.probe import Context, stable_int


@dataclass(frozen=True)
class Setting:
    """The learner's view: which environment to make and how many steps it may spend."""

    env_id: str
    budget: int

    def make(self) -> Any:
        import gymnasium as gym

        return gym.make(self.env_id)


Policy = Callable[[np.ndarray], np.ndarray]  # observations [n, obs] -> actions [n] (or [n, act])


@dataclass(frozen=True)
class Curve:
    """A learner's output: (environment steps spent, frozen policy) checkpoints in step order."""

    points: tuple[tuple[int, Policy], ...]


def score_curve(curve: Curve, mean_return: Callable[[Any], float], solved: float, episode: int) -> dict[str, float]:
    """Cost and final return of a learning curve: checkpoints are evaluated (by `mean_return`, on the
    probe's own seeds) up to the first one at the solved level, and the last one."""
    points = sorted(curve.points, key=lambda p: p[0])
    returns: dict[int, float] = {}
    first = None
    for i, (steps, policy) in enumerate(points):  # up to the first solved checkpoint
        returns[i] = mean_return(policy)
        if returns[i] >= solved:
            first = steps
            break
    last = len(points) - 1
    if last not in returns:
        returns[last] = mean_return(points[last][1])
    spent = first if first is not None else points[last][0]
    return {"env_steps_to_solve": float(spent + episode), "train_steps_to_solve": float(spent),
            "unsolved": float(first is None), "return": returns[last]}


def run_seed(ctx: Context) -> int:
    # the seed index, not the knob: the runs at different budgets are one run cut at different caps
    return stable_int(ctx.probe_id, ctx.contender, ctx.seed) % (2**31 - 1)


@functools.cache
def code_key(*modules: Any) -> int:
    """A key for runs kept on disk: the source of the modules that train them and the library versions
    (read once per process, so that one run's trials agree on it)."""
    import inspect
    import sys

    import gymnasium
    import stable_baselines3
    import torch

    sources = [inspect.getsource(m) for m in (sys.modules[__name__], *modules)]  # this file and the trainers'
    return stable_int(*sources, stable_baselines3.__version__, torch.__version__, gymnasium.__version__)


def _load_run(path: Any) -> tuple[int, Curve] | None:
    try:
        return pickle.loads(path.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError):
        return None  # none yet, or unreadable: train


def remembered_run(name: str, key: tuple, budget: int, train: Callable[[int], Curve]) -> Curve:
    """`train(budget)`'s curve, from disk when a stored run covers this budget, else trained and stored.

    `key` must name everything the run depends on except its cap: the run is then one deterministic
    run cut at its cap, so a longer stored run serves a smaller cap by its checkpoints up to the cap,
    and a run that stopped on its own before its cap serves any larger one (smaller knob values and
    budget-check reruns cost nothing). joblib.Memory only matches equal arguments, hence this lookup."""
    path = cache_dir() / "rl_runs" / f"{name}-{stable_int(*key):x}.pkl"
    stored = _load_run(path)
    if stored is not None:
        cap, curve = stored
        end = curve.points[-1][0]
        if end < cap and end <= budget:  # it stopped on its own, before either cap
            return curve
        cut = tuple(p for p in curve.points if p[0] <= budget)
        if cut and cut[-1][0] == budget:  # cut the longer run at its checkpoint on this cap
            return Curve(cut)
    curve = train(budget)
    stored = _load_run(path)  # again: another worker may have stored a longer run meanwhile
    if stored is None or curve.points[-1][0] > stored[1].points[-1][0]:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(pickle.dumps((budget, curve)))
            os.replace(tmp, path)  # atomic: a worker never reads half a file
        except OSError:
            pass  # no writable cache folder: the run is simply not kept
    return curve


def silent(model: Any) -> Any:
    """The model with a logger that writes nowhere: SB3's default one makes an empty SB3-<time> folder in
    the temp directory at every learn() call, even at verbose 0 (hundreds per run)."""
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def checkpoint_callback(budget: int, every: int, window: int, freeze: Callable[[Any], Any],
                        solved_level: float) -> Any:
    """An SB3 callback that keeps `freeze(policy)` every `every` env steps and stops training at the
    budget or once its last `window` training episodes average the solved level."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Checkpoints(BaseCallback):
        """Keeps a frozen copy every `every` env steps; stops at the budget or when training episodes say solved."""

        def __init__(self) -> None:
            super().__init__()
            self.points: list[tuple[int, Policy]] = []
            self.mark = every

        def _on_step(self) -> bool:
            t = self.num_timesteps
            if t >= self.mark:
                self.points.append((t, freeze(self.model.policy)))
                self.mark = (t // every + 1) * every
            recent = [e["r"] for e in list(self.model.ep_info_buffer)[-window:]]
            solved = window > 0 and len(recent) >= window and float(np.mean(recent)) >= solved_level
            return t < budget and not solved

    return Checkpoints()


def learn_curve(model: Any, horizon: int, budget: int, every: int, freeze: Callable[[Any], Any], solved_level: float,
                window: int = 0, also: tuple[Any, ...] = ()) -> Curve:
    """Train an SB3 `model` (logger silenced) up to `budget` env steps, schedules over `horizon`: a frozen
    checkpoint every `every` steps and at its end (`checkpoint_callback`), then any callbacks in `also`."""
    from stable_baselines3.common.callbacks import CallbackList

    checkpoints = checkpoint_callback(budget, every, window, freeze, solved_level)
    silent(model).learn(total_timesteps=horizon, callback=CallbackList([checkpoints, *also]))
    points = list(checkpoints.points)
    if not points or points[-1][0] != model.num_timesteps:
        points.append((int(model.num_timesteps), freeze(model.policy)))
    return Curve(tuple(points))
