"""Hidden entities: balls come over a wall from a thrower no one sees; where is the thrower, and where next?

Claim: a network trained to predict the next observation from the recent ones does not represent the
    unseen entity that produces them, so once the entity stands where it never stood in training its
    predictions break, where a state-space model with the entity as its latent state (fitted by
    maximum likelihood on the same observations) keeps predicting and tracks the entity.
Source: seeds/003_f388986fd4a90ec9.txt (item 12: inferring hidden entities, the pitcher off screen whose
    presence is implied by the balls that fly in); Durbin & Koopman, "Time Series Analysis by State Space
    Methods" (the local-level model and its Kalman filter).
Setup: the analogy in one sentence: balls fly over a wall from a thrower behind it; only where each ball
    lands is seen, and the thrower walks slowly. Latent thrower position p_t: a random walk with step sd
    `drift`; each step one ball lands at y_t = p_t + spread · ε_t. Training: n_train episodes of `length`
    landings whose thrower starts at p_0 ~ N(0, start_sd²) (20 % of episodes held out for early stopping).
    Test: n_test episodes of `test_length` landings whose thrower starts at p_0 ~ N(k · R, start_sd²), R = the
    sd of the training throwers' positions over an episode; the learner sees each test episode but its last landing
    and predicts that one (one hidden answer per episode, so no answer sits in another's input). Knob k:
    how far (in R) the test thrower stands from where throwers stood in training (k = 0: the training
    distribution, the positive control). The training episodes come from a stream that depends on the
    learner's seed only, so one model per seed is tested at every k.
Deep contender: (a) MLP 2 × width (ReLU) from the last `window` landings to the next; (b) LSTM (hidden `lstm_width`)
    that reads each episode landing by landing and predicts the next after each (it sees the whole past,
    more than the MLP's window), read out linearly. Inputs and targets standardised with the
    training landings' mean and sd (as any practitioner would); MSE, Adam, up to `epochs` epochs with early
    stopping on the held-out episodes; every seed at once.
Alternative: the local-level state-space model (statsmodels UnobservedComponents, a Kalman filter): its two
    variances fitted by maximum likelihood on the training episodes, then one-step predictions by the
    filter (the thrower's position predicted from the landings before) on each test episode.
Remedy: the same MLP with reversible instance normalisation (RevIN, Kim et al. ICLR 2022): each window's
    mean is subtracted from its inputs and added back to the prediction, so the net only models motion
    relative to where the balls have been landing (translation built in).
Metric: prediction error ratio: MSE of the next-landing predictions ÷ the steady-state one-step variance of
    the true model (1 = the best any predictor can do on average; repeating the last landing gives
    (2·spread² + drift²) ÷ that, ≈ 1.8 here; success ≤ 1.25). Also latent_corr: |correlation| between the
    contender's estimate of where the thrower now stands and the truth, across test episodes (a net's estimate
    is its next-landing prediction, the only place it could hold the thrower; the state-space model's is its
    filtered level from the same landings). Diagnostic: the training error ratio.
Reference figure: none published for this task; seed 003 states the limit in words. Xu et al. (ICLR 2021,
    "How neural networks extrapolate") show ReLU MLPs extrapolate linearly far from the training range.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from deeplimits.ensemble import Ensemble, predict, seeded, train_epochs
from deeplimits.probe import (
    Answer,
    Contender,
    Context,
    Fit,
    Knob,
    Metric,
    Probe,
    Profile,
    Reference,
    Task,
    Threshold,
    stable_int,
)


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class HiddenProfile(Profile):
    drift: float = 0.1  # sd of the thrower's step
    spread: float = 1.0  # sd of where a ball lands around the thrower
    start_sd: float = 1.0  # sd of the thrower's starting point in training
    length: int = 100  # landings per training episode
    test_length: int = 40  # landings per test episode (the last one is predicted; the filter is steady by then)
    window: int = 20  # landings a net sees before predicting the next
    n_train: int = 100  # training episodes
    n_test: int = 400  # test episodes (one prediction each)
    width: int = 64  # MLP
    lstm_width: int = 32
    epochs: int = 60
    patience: int = 8
    batch: int = 128  # windows per step (MLP)
    lstm_batch: int = 8  # episodes per step (LSTM: each gives length - window predictions)
    lr: float = 3e-3


PROFILES = {
    "smoke": HiddenProfile("smoke", knob=(0.0, 8.0), seeds=3, length=50, window=10, n_train=30, n_test=60,
                           test_length=25, width=16, lstm_width=16, epochs=4, patience=2),
    "quick": HiddenProfile("quick", knob=(0.0, 4.0, 16.0, 64.0), seeds=5),
    "paper": HiddenProfile("paper", knob=(0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0), seeds=10, n_train=1000,
                           n_test=2000,
                           epochs=200, patience=20),
}


def position_sd(p: HiddenProfile) -> float:
    """R: the sd of a training thrower's position, averaged over an episode (start spread + random walk)."""
    return float(np.sqrt(p.start_sd**2 + p.drift**2 * (p.length - 1) / 2))


def optimal_variance(p: HiddenProfile) -> float:
    """Steady-state one-step prediction variance of the true local-level model (the Riccati fixed point)."""
    q, r = p.drift**2, p.spread**2
    prior = (q + np.sqrt(q * q + 4 * q * r)) / 2  # P = P r / (P + r) + q
    return float(prior + r)


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class HiddenPublic:
    test: np.ndarray  # [n_test, length - 1] landings seen in each test episode; predict the next one
    window: int


def episodes(count: int, centre: float, p: HiddenProfile, rng: np.random.Generator, length: int | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """(landings, thrower positions), each [count, length]."""
    start = rng.normal(centre, p.start_sd, (count, 1))
    steps = rng.normal(0.0, p.drift, (count, (length or p.length) - 1))
    thrower = np.concatenate([start, start + np.cumsum(steps, 1)], 1)
    return thrower + rng.normal(0.0, p.spread, thrower.shape), thrower


def training_episodes(seed: int, p: HiddenProfile) -> np.ndarray:
    """A learner's training landings [n_train, length]: from a stream that depends on its seed only (the
    training throwers never depend on the knob), so one model per seed is tested at every offset."""
    return episodes(p.n_train, 0.0, p, np.random.default_rng(stable_int("hidden_entities", "train", seed)))[0]


@lru_cache(maxsize=64)
def _task(k: float, key: int, profile: HiddenProfile) -> Task:
    rng = np.random.default_rng(key)
    test, thrower = episodes(profile.n_test, k * position_sd(profile), profile, rng, profile.test_length)
    # the last landing is what is predicted (one per episode, so no answer sits in another's input)
    return Task(HiddenPublic(test[:, :-1], profile.window), {"next": test[:, -1], "thrower": thrower[:, -1]})


def make_task(k: float, rng: np.random.Generator, profile: HiddenProfile) -> Task:
    return _task(float(k), int(rng.integers(2**62)), profile)


def check_series(y: np.ndarray, window: int) -> np.ndarray:
    """A clear error for observations no model here can use."""
    y = np.asarray(y, float)
    if y.ndim != 2 or y.shape[1] <= window or window < 1:
        raise ValueError(f"observations must be episodes × steps with more than window = {window} steps, "
                         f"got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("observations must be finite (NaN or inf found)")
    return y


def score(task: Task, output: dict, ctx: Context) -> dict[str, float]:
    """output: {"pred": [n_test] each episode's next landing, "latent": [n_test] the contender's estimate of
    where the thrower now stands}."""
    truth, thrower = task.hidden["next"], task.hidden["thrower"]
    pred, latent = np.asarray(output["pred"], float), np.asarray(output["latent"], float)
    for name, arr in (("pred", pred), ("latent", latent)):
        if arr.shape != truth.shape or not np.isfinite(arr).all():
            raise ValueError(f"a contender must return {truth.shape} finite values for {name!r}, got {arr.shape}")
    corr = abs(np.corrcoef(latent, thrower)[0, 1]) if latent.std() > 1e-12 else 0.0
    return {"error_ratio": float(np.mean((pred - truth) ** 2) / optimal_variance(ctx.profile)),
            "latent_corr": float(corr)}


# --- deep contenders ------------------------------------------------------------------------------
def windows(y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (last `window` landings, next landing) pair: [episodes, steps, window] and [episodes, steps]."""
    idx = np.arange(window)[None] + np.arange(y.shape[1] - window)[:, None]
    return y[:, idx], y[:, window:]


class LSTM(nn.Module):
    """An LSTM that reads an episode's landings one by one and predicts the next after each, built from
    linear layers (nn.LSTM has no vmap batching rule, so the ensemble would loop over seeds)."""

    def __init__(self, width: int, window: int) -> None:
        super().__init__()
        self.width, self.window = width, window
        self.gates = nn.Linear(1 + width, 4 * width)
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., length] -> predictions of x_t for t = window .. length - 1, each from x_<t."""
        h = x.new_zeros(*x.shape[:-1], self.width)
        c = torch.zeros_like(h)
        states = []
        for t in range(x.shape[-1] - 1):
            i, f, g, o = self.gates(torch.cat([x[..., t:t + 1], h], -1)).chunk(4, -1)
            c = torch.sigmoid(f + 1.0) * c + torch.sigmoid(i) * torch.tanh(g)  # forget bias 1
            h = torch.sigmoid(o) * torch.tanh(c)
            if t >= self.window - 1:
                states.append(h)
        return self.out(torch.stack(states, -2)).squeeze(-1)


class RevIN(nn.Module):
    """Reversible instance normalisation around a net: subtract each window's mean, add it back."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centre = x.mean(-1, keepdim=True)
        return self.net(x - centre) + centre


def mlp(window: int, width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(window, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 1))


def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-member MSE [E] of outputs [E, B, 1] (one prediction per window) or [E, B, T] (per episode)."""
    out = out.squeeze(-1) if out.shape[-1] == 1 else out
    return ((out - y) ** 2).flatten(1).mean(-1)


@lru_cache(maxsize=8)
def trained(kind: str, seeds: tuple[int, ...], prof: HiddenProfile, window: int
            ) -> tuple[Ensemble, np.ndarray, np.ndarray, np.ndarray]:
    """One net per seed (all seeds at once), cached: the training data does not depend on the knob.
    Returns the ensemble, each member's standardisation (mean, sd) and its training error ratio."""
    torch.set_num_threads(1)
    data = [check_series(training_episodes(s, prof), window) for s in seeds]
    # standardised with the training landings' statistics (per member: each sees only its own data)
    mean = np.array([y.mean() for y in data])[:, None, None]
    sd = np.array([y.std() for y in data])[:, None, None]
    n_fit = int(0.8 * prof.n_train)  # split by episode, so held-out windows share no landing with training

    def tensors(part: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        if kind == "lstm":  # whole episodes: the LSTM predicts every landing from those before it
            x = (np.stack(part) - mean) / sd
            return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(x[..., window:], dtype=torch.float32)
        xs, ys = zip(*(windows(y, window) for y in part))
        x, y = (np.stack(xs) - mean[..., None]) / sd[..., None], (np.stack(ys) - mean) / sd
        return (torch.as_tensor(x.reshape(len(part), -1, window), dtype=torch.float32),
                torch.as_tensor(y.reshape(len(part), -1), dtype=torch.float32))

    x_fit, y_fit = tensors([y[:n_fit] for y in data])
    x_val, y_val = tensors([y[n_fit:] for y in data])

    def factory() -> nn.Module:
        if kind == "lstm":
            return LSTM(prof.lstm_width, window)
        net = mlp(window, prof.width)
        return RevIN(net) if kind == "revin" else net

    ens = Ensemble([seeded(factory, stable_int("hidden_entities", kind, s)) for s in seeds])
    batch = prof.lstm_batch if kind == "lstm" else prof.batch
    train_epochs(ens, x_fit, y_fit, mse, prof.epochs, batch, prof.lr, "adam", x_val=x_val, y_val=y_val,
                 score=lambda o, t: -mse(o, t), patience=prof.patience)
    fit = mse(predict(ens, x_fit), y_fit).numpy() * sd.ravel() ** 2 / optimal_variance(prof)
    return ens, mean, sd, fit


def train_net(publics: list[HiddenPublic], ctxs: list[Context], kind: str) -> list[Answer]:
    torch.set_num_threads(1)
    w = publics[0].window
    for p in publics:
        check_series(p.test, w)
    ens, mean, sd, fit = trained(kind, tuple(c.seed for c in ctxs), ctxs[0].profile, w)
    seen = (np.stack([p.test for p in publics]) - mean) / sd  # [E, episodes, length - 1]
    if kind == "lstm":  # a placeholder after the last landing: the LSTM's final output predicts it
        x_test = torch.as_tensor(np.concatenate([seen, np.zeros_like(seen[..., :1])], -1), dtype=torch.float32)
    else:
        x_test = torch.as_tensor(seen[..., -w:], dtype=torch.float32)
    pred = predict(ens, x_test)[..., -1].numpy() * sd[:, :, 0] + mean[:, :, 0]  # [E, episodes]
    return [Answer({"pred": pred[e], "latent": pred[e]}, {"train_error_ratio": float(fit[e])})
            for e in range(len(publics))]


def mlp_window(publics: list[HiddenPublic], ctxs: list[Context]) -> list[Answer]:
    return train_net(publics, ctxs, "mlp")


def lstm_window(publics: list[HiddenPublic], ctxs: list[Context]) -> list[Answer]:
    return train_net(publics, ctxs, "lstm")


def mlp_revin(publics: list[HiddenPublic], ctxs: list[Context]) -> list[Answer]:
    return train_net(publics, ctxs, "revin")


# --- alternative ----------------------------------------------------------------------------------
def fit_local_level(train: np.ndarray, max_episodes: int = 40) -> np.ndarray:
    """Maximum-likelihood (irregular, level) variances of the local-level model, the log-likelihood summed
    over training episodes (statsmodels fits one series at a time; episodes are independent)."""
    from scipy.optimize import minimize
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    models = [UnobservedComponents(y, "llevel") for y in train[:max_episodes]]

    def nll(log_params: np.ndarray) -> float:
        return -sum(m.loglike(np.exp(log_params)) for m in models)

    start = np.log(np.maximum(models[0].start_params, 1e-4))
    return np.exp(minimize(nll, start, method="L-BFGS-B", bounds=[(-12, 6)] * 2).x)


@lru_cache(maxsize=16)
def fitted_variances(seed: int, prof: HiddenProfile) -> tuple[np.ndarray, float]:
    """The local-level variances fitted on a seed's training landings, and the training error ratio."""
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    train = check_series(training_episodes(seed, prof), prof.window)
    params = fit_local_level(train)
    fitted = UnobservedComponents(train[0], "llevel").filter(params).forecasts[0][prof.window:]
    return params, float(np.mean((fitted - train[0][prof.window:]) ** 2) / optimal_variance(prof))


def state_space(public: HiddenPublic, ctx: Context) -> Answer:
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    w = public.window
    check_series(public.test, w)
    params, train_ratio = fitted_variances(ctx.seed, ctx.profile)
    # the level predicted for the next step from every landing seen: where the thrower stands, and
    # (the throw's noise having mean 0) the forecast of the next landing
    level = np.array([UnobservedComponents(y, "llevel").filter(params).predicted_state[0, -1] for y in public.test])
    return Answer({"pred": level, "latent": level}, {"train_error_ratio": train_ratio})


# --- the probe ------------------------------------------------------------------------------
TUNING_MLP = ("searched at offset 0 (easy end), quick budget, 3 seeds, on the held-out 20 % of training episodes "
              "(standardised MSE): width {32, 64} × Adam lr {1e-3, 3e-3}: 0.4722 / 0.4721 / 0.4709 / 0.4695 "
              "(w32 lr1e-3, w32 lr3e-3, w64 lr1e-3, w64 lr3e-3); pick width 64, lr 3e-3")
TUNING_LSTM = ("same split and budget (8 episodes a step): hidden width {32, 64} × Adam lr {3e-3, 1e-2}: "
               "0.4538 / 0.4549 / 0.4539 / 0.4561 (w32 lr3e-3, w32 lr1e-2, w64 lr3e-3, w64 lr1e-2); pick width 32, "
               "lr 3e-3 (ties width 64 at half the cost)")

PROBE = Probe(
    id="hidden_entities",
    family="reasoning",
    claim="A network that predicts the next observation from the recent ones does not infer the unseen entity "
          "producing them: once the entity stands where it never stood in training its predictions break, "
          "where a state-space model with the entity as its latent keeps predicting and tracks it.",
    sources=("seeds/003_f388986fd4a90ec9.txt",
             "Durbin & Koopman 2012, Time Series Analysis by State Space Methods (local-level model)"),
    version=1,
    knob=Knob("offset", "how far the test thrower stands from the training throwers, in sds of their positions",
              unit="sd", validate=lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1e3),
    metrics=(
        Metric("error_ratio", "MSE of next-landing predictions ÷ the true model's one-step variance (1 = best)",
               direction="lower", chance=1.8, lo=0.0, log_scale=True),
        Metric("latent_corr", "|correlation| of the contender's thrower estimate with the true thrower, per episode",
               lo=0.0, hi=1.0),
        Metric("train_error_ratio", "the same ratio on the training landings", direction="lower", lo=0.0,
               diagnostic=True),
    ),
    rule=Threshold("error_ratio", success=1.25),
    profiles=PROFILES,
    make_task=make_task,
    score=score,
    contenders=(
        Contender("mlp", "deep", mlp_window, "MLP 2 × width over the last `window` landings", batched=True,
                  tuning=TUNING_MLP),
        Contender("lstm", "deep", lstm_window, "LSTM over the last `window` landings", batched=True,
                  tuning=TUNING_LSTM),
        Contender("state_space", "alternative", state_space, "local-level state-space model (statsmodels "
                  "UnobservedComponents, maximum likelihood, Kalman filter)"),
        Contender("mlp_revin", "remedy", mlp_revin, "the MLP with reversible instance normalisation (RevIN)",
                  batched=True),
    ),
    references=(
        Reference("Xu et al. 2021, How Neural Networks Extrapolate (ICLR)",
                  "ReLU MLPs trained on a bounded range, tested far outside it",
                  "ReLU MLPs converge to linear functions along directions from the origin outside the training "
                  "range; they extrapolate well only where the target is linear there",
                  "recalled (paper's theorem, not a figure)"),
    ),
    budget=lambda p: (f"{p.n_train} training episodes × {p.length} landings, window {p.window}, MLP width {p.width}, "
                      f"LSTM {p.lstm_width}, "
                      f"≤ {p.epochs} epochs × batch {p.batch}, Adam lr {p.lr:g}, early stopping (patience "
                      f"{p.patience})"),
    budget_fields=("epochs", "patience"),  # early stopping binds first unless patience grows too
    fit=Fit("train_error_ratio", 1.25),
    requires=("statsmodels",),
    extra="logic",
)
