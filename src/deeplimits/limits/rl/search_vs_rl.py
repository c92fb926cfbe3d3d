"""Search against learning: tree search with no training draws perfect play; self-play policies lose to it.

Claim: at the training budgets tried, deep RL policies trained by self-play (DQN, policy gradient) still
    lose games of tic-tac-toe to a perfect (minimax) player, where Monte Carlo tree search with random
    rollouts, which needs no training at all, does not lose.
Source: seeds/000_aa28131255717d31.txt (its first Irpan point: off-the-shelf tree search beats deep RL on
    Atari, online trajectory optimisation beats it on MuJoCo); Irpan 2018, "Deep Reinforcement Learning
    Doesn't Work Yet"; Guo, Singh, Lee, Lewis and Wang 2014, "Deep Learning for Real-Time Atari Game Play
    Using Offline Monte-Carlo Tree Search Planning" (UCT against DQN).
Setup: OpenSpiel's tic_tac_toe. A learner gets the game's name (pyspiel.load_game is the factory) and a
    budget of `knob × train_scale` training games, and returns a policy: a callable pyspiel state -> action.
    The probe, never the learner, plays it: `eval_games` games as first mover and as many as second mover
    against a perfect referee (OpenSpiel's MinimaxSolver table of exact action values; among equally good
    moves the referee picks one at random with the probe's own seed, so a policy meets many optimal lines,
    not one), and the same again against a uniformly random player. Connect Four is not offered: a perfect
    referee for it needs a solver OpenSpiel does not ship (its MinimaxSolver enumerates the whole tree).
Deep contender: (a) OpenSpiel's PyTorch DQN (open_spiel.python.pytorch.dqn), one agent per seat trained by
    self-play, greedy over legal actions at test time; (b) OpenSpiel's PyTorch policy gradient
    (open_spiel.python.pytorch.policy_gradient, advantage actor-critic, A2C), one agent per seat trained by
    self-play, most probable legal action at test time. Both MLPs on the 27-value
    observation; hyperparameters in TUNING_DQN / TUNING_PG. OpenSpiel's AlphaZero is JAX-only, so it is not an arm.
Alternative: OpenSpiel's MCTSBot (C++): UCT with c = 2, one random rollout per leaf, MCTS-Solver on,
    `mcts_simulations` simulations per move — the settings of open_spiel/python/examples/mcts.py, not tuned
    here. Zero training games; its cost is search at play time (simulations per move, reported as a
    diagnostic), spent again at every move. Measured once with this probe (3 seeds × 200 games against the
    referee): 30 simulations lose 33 % of games, 100 lose 24 %, 300 lose 13 %, 1000 lose 1.8 %, 3000 none —
    the search needs its own compute; `--set mcts_simulations=...` moves it.
Metric: loss rate against the minimax referee, both seats pooled (lower is better; success ≤ 0.05;
    chance 0.87 = the exact expected loss rate of a uniformly random player against this referee, 0.78 as
    first mover and 0.97 as second); also the loss rate per seat, the draw rate against the referee and the
    win rate against a random player. Diagnostics: training moves played, search simulations per move.
    Positive control: the best deep arm at the largest budget loses at most half its games to the referee
    (clearly better than the 0.87 of a random player), i.e. self-play training works; whether it reaches
    perfect play is the claim.
Reference figure: tic-tac-toe is a draw under perfect play (5,478 legal positions); Guo et al. 2014: UCT beat
    DQN on all 7 Atari games of Mnih et al. 2013's table (e.g. Breakout 406 vs 168, Seaquest 3257 vs 1705),
    planning against the emulator and far slower than real time.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from deeplimits.probe import (
    Answer,
    Contender,
    Context,
    Control,
    Knob,
    Metric,
    Probe,
    Profile,
    Reference,
    Task,
    Threshold,
)

GAME = "tic_tac_toe"
CHANCE_LOSS = 0.87  # exact: a uniform random player loses 0.777 (first) and 0.968 (second) to this referee


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class GameProfile(Profile):
    train_scale: int = 1  # training games = knob × train_scale (the budget check scales it 4x)
    eval_games: int = 100  # games per seat against the referee, and as many per seat against a random player
    mcts_simulations: int = 1000
    min_buffer: int = 1000  # DQN: transitions in the replay buffer before it learns (OpenSpiel's default)
    pg_batch: int = 16  # policy gradient: episodes per critic update (OpenSpiel's default)


PROFILES = {
    "smoke": GameProfile("smoke", knob=(10, 20), seeds=3, eval_games=4, mcts_simulations=100, min_buffer=32,
                         pg_batch=4),
    "quick": GameProfile("quick", knob=(1000, 8000), seeds=3),  # 2 values: the 4x check at 1,000 keeps it under 5 min
    "paper": GameProfile("paper", knob=(1000, 4000, 16000, 64000), seeds=10, eval_games=500),
}


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GamePublic:
    """What a learner sees: the game (pyspiel.load_game(game) is its factory) and its training budget."""

    game: str
    train_games: int


@dataclass(frozen=True)
class Referee:
    """What only the probe sees: the seed of its opponents' tie-breaking."""

    seed: int


def make_task(games: int, rng: np.random.Generator, profile: GameProfile) -> Task:
    return Task(GamePublic(GAME, int(games) * profile.train_scale), Referee(int(rng.integers(2**31 - 1))))


@lru_cache(maxsize=2)
def solved(game: str) -> dict:
    """OpenSpiel's exact minimax table: state string -> action values for the player to move."""
    from open_spiel.python.algorithms.minimax_solver import MinimaxSolver

    return MinimaxSolver(game).solve()


def minimax_player(game: str, rng: np.random.Generator):
    """A perfect player that breaks ties between equally good moves at random."""
    table = solved(game)

    def act(state: Any) -> int:
        values = table[str(state)].action_values
        legal = state.legal_actions()
        best = max(values[a] for a in legal)
        return int(rng.choice([a for a in legal if values[a] >= best - 1e-9]))
    return act


def random_player(rng: np.random.Generator):
    return lambda state: int(rng.choice(state.legal_actions()))


def play(game: Any, first, second) -> list[float]:
    """One game; returns each seat's return (+1 win, 0 draw, -1 loss)."""
    state = game.new_initial_state()
    while not state.is_terminal():
        action = (first if state.current_player() == 0 else second)(state)
        if action not in state.legal_actions():
            raise ValueError(f"policy played illegal action {action} in\n{state}")
        state.apply_action(action)
    return list(state.returns())


def results(game: Any, policy, opponent, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The policy's returns as first mover and as second mover, n games each."""
    first = np.array([play(game, policy, opponent)[0] for _ in range(n)])
    second = np.array([play(game, opponent, policy)[1] for _ in range(n)])
    return first, second


def score(task: Task, output: Any, ctx: Context) -> dict[str, float]:
    """output: a callable pyspiel state -> action (the player to move is state.current_player())."""
    import pyspiel

    if not callable(output):
        raise TypeError(f"a contender must return a policy (callable state -> action), got {type(output).__name__}")
    game = pyspiel.load_game(task.public.game)
    rng = np.random.default_rng(task.hidden.seed)
    n = ctx.profile.eval_games
    first, second = results(game, output, minimax_player(task.public.game, rng), n)
    both = np.concatenate([first, second])
    r_first, r_second = results(game, output, random_player(rng), n)
    return {"loss_rate": float((both < 0).mean()),
            "loss_rate_first": float((first < 0).mean()),
            "loss_rate_second": float((second < 0).mean()),
            "draw_rate": float((both == 0).mean()),
            "win_rate_random": float((np.concatenate([r_first, r_second]) > 0).mean())}


# --- deep contenders: OpenSpiel's PyTorch agents, self-play -----------------------------------
class NetPolicy:
    """A trained network per seat; plays the legal action with the largest output (Q-value or logit)."""

    def __init__(self, nets: list) -> None:
        self.nets = nets

    def __call__(self, state: Any) -> int:
        import torch

        player = state.current_player()
        obs = torch.tensor(state.observation_tensor(player), dtype=torch.float32)[None]
        with torch.no_grad():
            out = self.nets[player](obs)[0].numpy()
        legal = state.legal_actions()
        return int(legal[int(np.argmax(out[legal]))])


def _seed(ctx: Context) -> int:
    return int(ctx.rng_seed % (2**31 - 1))


def self_play(agents: list, game: str, games: int) -> int:
    """OpenSpiel's training loop (as in its tic_tac_toe examples); returns the moves played."""
    from open_spiel.python import rl_environment

    env = rl_environment.Environment(game)
    moves = 0
    for _ in range(games):
        step = env.reset()
        while not step.last():
            player = step.observations["current_player"]
            step = env.step([agents[player].step(step).action])
            moves += 1
        for agent in agents:  # the final step: each agent sees the outcome and learns from it
            agent.step(step)
    return moves


def _spaces(game: str) -> tuple[int, int]:
    import pyspiel

    g = pyspiel.load_game(game)
    return g.observation_tensor_size(), g.num_distinct_actions()


def _seed_all(seed: int) -> None:
    import torch

    torch.set_num_threads(1)
    np.random.seed(seed)  # OpenSpiel's agents draw exploration and replay samples from numpy's global generator
    torch.manual_seed(seed)


# Net and learning rate picked by a short validation run (TUNING_DQN); batch 32 is OpenSpiel's breakthrough example's,
# the replay size OpenSpiel's default (a replay draw permutes the whole buffer: ~5 ms at 70k transitions with 1e5);
# exploration decays over the first half of the budget (OpenSpiel's default: over 1e6 steps).
DQN_KW = dict(hidden_layers_sizes=[64, 64], batch_size=32, replay_buffer_capacity=10_000, learning_rate=1e-3,
              optimizer_str="adam", learn_every=4, update_target_network_every=1000, epsilon_start=1.0,
              epsilon_end=0.05, epsilon_decay_schedule_str="linear", discount_factor=1.0)
# loss and policy learning rate picked by the same validation run (TUNING_PG); the critic's rate and the entropy
# cost are OpenSpiel's defaults; one critic update per policy update and Adam (OpenSpiel's default is SGD, 8:1)
PG_KW = dict(loss_str="a2c", hidden_layers_sizes=(64, 64), pi_learning_rate=1e-3, critic_learning_rate=1e-2,
             entropy_cost=0.01, num_critic_before_pi=1, optimizer_str="adam")


def dqn_selfplay(public: GamePublic, ctx: Context) -> Answer:
    from open_spiel.python.pytorch import dqn

    seed = _seed(ctx)
    size, actions = _spaces(public.game)
    decay = max(1, public.train_games * 9 // 4)  # ≈ half of the moves each agent will make
    agents = [dqn.DQN(p, size, actions, seed=seed + p, epsilon_decay_duration=decay,
                      min_buffer_size_to_learn=ctx.profile.min_buffer, **DQN_KW) for p in (0, 1)]
    _seed_all(seed)
    moves = self_play(agents, public.game, public.train_games)
    nets = [copy.deepcopy(a._q_network).eval() for a in agents]
    return Answer(NetPolicy(nets), {"train_moves": float(moves), "search_per_move": 0.0})


def pg_selfplay(public: GamePublic, ctx: Context) -> Answer:
    import torch
    from open_spiel.python.pytorch import policy_gradient

    seed = _seed(ctx)
    size, actions = _spaces(public.game)
    agents = []
    for p in (0, 1):
        torch.manual_seed(seed + p)  # OpenSpiel's PolicyGradient takes no seed of its own
        agents.append(policy_gradient.PolicyGradient(p, size, actions, batch_size=ctx.profile.pg_batch, **PG_KW))
    _seed_all(seed)
    moves = self_play(agents, public.game, public.train_games)
    nets = [copy.deepcopy(a.policy_logits_network).eval() for a in agents]
    return Answer(NetPolicy(nets), {"train_moves": float(moves), "search_per_move": 0.0})


# --- alternative: MCTS, no training -----------------------------------------------------------
class MCTSPolicy:
    """OpenSpiel's C++ MCTSBot with random rollouts; built on first use (pyspiel bots do not pickle)."""

    def __init__(self, game: str, simulations: int, seed: int) -> None:
        self.game, self.simulations, self.seed = game, simulations, seed
        self._bot = None

    def __call__(self, state: Any) -> int:
        import pyspiel

        if self._bot is None:
            game = pyspiel.load_game(self.game)
            evaluator = pyspiel.RandomRolloutEvaluator(1, self.seed)
            # uct_c 2, 1 rollout, MCTS-Solver on: open_spiel/python/examples/mcts.py's defaults
            self._bot = pyspiel.MCTSBot(game, evaluator, 2.0, self.simulations, 1000, True, self.seed, False)
        return int(self._bot.step(state))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_bot": None}


def mcts(public: GamePublic, ctx: Context) -> Answer:
    sims = ctx.profile.mcts_simulations
    return Answer(MCTSPolicy(public.game, sims, _seed(ctx)), {"train_moves": 0.0, "search_per_move": float(sims)})


# --- the probe ------------------------------------------------------------------------------
TUNING_DQN = ("short validation run before the sweep (4,000 self-play games, seed 1; score = share of 200 games "
              "not lost against a uniformly random player, both seats; the minimax referee never used): Adam lr 1e-3 "
              "MLP [128] 0.935, Adam lr 3e-4 [128] 0.79, Adam lr 1e-3 [64, 64] 0.96 -> picked; OpenSpiel's own "
              "defaults (SGD lr 0.01, learn every 10, MLP [64, 64]) 0.71 at 4,000 games (seed 0). Not searched: "
              "batch 32, learn every 4, target copy every 1,000 steps, linear exploration 1 -> 0.05 over half the "
              "budget; the replay buffer was 1e5 in the validation run and is OpenSpiel's default 1e4 in the sweep "
              "(the same below 2,200 games; faster above)")
TUNING_PG = ("same validation run (4,000 games, seed 1, share not lost against a random player): A2C policy lr 1e-3 "
             "0.82 -> picked, A2C 3e-3 0.805, RPG 1e-3 0.815, RPG 3e-3 0.79 (all Adam, critic lr 1e-2, batch 16 "
             "episodes, one critic step per policy step, entropy 0.01, MLP [64, 64]; not searched)")

PROBE = Probe(
    id="search_vs_rl",
    family="rl",
    claim="Deep RL policies trained by self-play still lose tic-tac-toe games to a perfect player at the training "
          "budgets tried, where Monte Carlo tree search with random rollouts and no training does not lose.",
    sources=("seeds/000_aa28131255717d31.txt", "Irpan 2018, Deep Reinforcement Learning Doesn't Work Yet",
             "Guo et al. 2014, Deep Learning for Real-Time Atari Game Play Using Offline MCTS Planning"),
    version=1,
    knob=Knob("games", "self-play training games given to the deep arms (MCTS trains on none)", unit="games",
              harder="decreasing", log_scale=True,
              validate=lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
    metrics=(
        Metric("loss_rate", "share of games lost to the minimax referee, both seats", direction="lower",
               chance=CHANCE_LOSS, lo=0.0, hi=1.0),
        Metric("loss_rate_first", "share of games lost to the referee as first mover (X)", direction="lower",
               chance=0.78, lo=0.0, hi=1.0),
        Metric("loss_rate_second", "share of games lost to the referee as second mover (O)", direction="lower",
               chance=0.97, lo=0.0, hi=1.0),
        Metric("draw_rate", "share of games drawn against the referee (perfect play: 1)", lo=0.0, hi=1.0),
        Metric("win_rate_random", "share of games won against a uniformly random player, both seats",
               lo=0.0, hi=1.0),
        Metric("train_moves", "moves played in training (self-play)", lo=0.0, diagnostic=True, log_scale=True),
        Metric("search_per_move", "search simulations per move at play time", lo=0.0, diagnostic=True),
    ),
    rule=Threshold("loss_rate", success=0.05),
    control=Control(metric="loss_rate", success=0.5,
                    description="the best deep arm at the largest training budget loses at most half its games "
                                "to the referee (a random player loses 0.87): self-play training works"),
    profiles=PROFILES,
    make_task=make_task,
    score=score,
    contenders=(
        Contender("dqn_selfplay", "deep", dqn_selfplay, "OpenSpiel PyTorch DQN, one agent per seat, self-play",
                  tuning=TUNING_DQN),
        Contender("pg_selfplay", "deep", pg_selfplay,
                  "OpenSpiel PyTorch policy gradient (A2C), one agent per seat, self-play", tuning=TUNING_PG),
        Contender("mcts", "alternative", mcts, "OpenSpiel MCTSBot, UCT + random rollouts + MCTS-Solver, no training"),
    ),
    references=(
        Reference("tic-tac-toe theory", "perfect play by both sides", "every game is a draw: loss rate 0",
                  "textbook fact (references/rl_reasoning_training.md §1f)", metric="loss_rate"),
        Reference("Guo et al. 2014 (NIPS) vs Mnih et al. 2013", "UCT planning on the emulator vs DQN, 7 Atari games",
                  "UCT beats DQN on all 7 (Breakout 406 vs 168, Seaquest 3257 vs 1705, Pong 21 vs 20)",
                  "recalled (references/rl_reasoning_training.md §1f, tag [R])"),
    ),
    budget=lambda p: ("DQN / A2C MLP [64, 64], self-play games = knob" + (f" × {p.train_scale}" if p.train_scale > 1
                      else "") + f"; MCTS {p.mcts_simulations} simulations/move, no training; "
                      f"{2 * p.eval_games} games vs minimax"),
    budget_fields=("train_scale",),
    requires=("pyspiel", "open_spiel", "torch", "tree"),
    extra="rl",
)
