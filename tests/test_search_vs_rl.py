"""search_vs_rl: the referee is perfect, the declared chance level is exact, the probe scores what it plays."""

import dataclasses

import numpy as np
import pytest

pytest.importorskip("pyspiel")
pytest.importorskip("tree")  # dm-tree, needed by OpenSpiel's PyTorch DQN

import pyspiel  # noqa: E402

from deeplimits.backends import evaluate  # noqa: E402
from deeplimits.limits.rl import search_vs_rl as svr  # noqa: E402
from deeplimits.probe import Context, task_rng  # noqa: E402

GAME = pyspiel.load_game(svr.GAME)
SMOKE = svr.PROFILES["smoke"]


def _ctx(profile=SMOKE, name="x"):
    return Context("search_vs_rl", name, 10, 0, profile)


def _expected_loss(state, seat, memo=None):
    """Exact expected loss of a uniform random player at `seat` against the referee's tie-breaking."""
    memo = {} if memo is None else memo
    key = (str(state), seat)  # the board decides the future: positions reached by several orders count once
    if key in memo:
        return memo[key]
    if state.is_terminal():
        return float(state.returns()[seat] < 0)
    legal = state.legal_actions()
    if state.current_player() != seat:
        values = svr.solved(svr.GAME)[str(state)].action_values
        best = max(values[a] for a in legal)
        legal = [a for a in legal if values[a] >= best - 1e-9]
    memo[key] = float(np.mean([_expected_loss(state.child(a), seat, memo) for a in legal]))
    return memo[key]


def test_declared_chance_is_a_random_players_exact_loss_rate():
    first, second = _expected_loss(GAME.new_initial_state(), 0), _expected_loss(GAME.new_initial_state(), 1)
    assert abs((first + second) / 2 - svr.CHANCE_LOSS) < 0.01
    assert abs(first - svr.PROBE.metric("loss_rate_first").chance) < 0.01
    assert abs(second - svr.PROBE.metric("loss_rate_second").chance) < 0.01


def test_referee_moves_are_optimal_by_alpha_beta():
    from open_spiel.python.algorithms.minimax import alpha_beta_search

    rng = np.random.default_rng(0)
    referee = svr.minimax_player(svr.GAME, rng)
    for _ in range(15):
        state = GAME.new_initial_state()
        for _ in range(int(rng.integers(0, 6))):  # a random position a few moves in
            if state.is_terminal():
                break
            state.apply_action(int(rng.choice(state.legal_actions())))
        if state.is_terminal():
            continue
        me = state.current_player()
        value, _ = alpha_beta_search(GAME, state=state, maximizing_player_id=me)
        after = state.child(referee(state))
        got = after.returns()[me] if after.is_terminal() else alpha_beta_search(
            GAME, state=after, maximizing_player_id=me)[0]
        assert got == value


def test_perfect_play_draws_and_random_play_loses():
    task = svr.make_task(10, task_rng("search_vs_rl", 10, 0), SMOKE)
    profile = dataclasses.replace(SMOKE, eval_games=30)
    perfect = svr.score(task, svr.minimax_player(svr.GAME, np.random.default_rng(1)), _ctx(profile))
    assert perfect["loss_rate"] == 0.0 and perfect["draw_rate"] == 1.0
    assert perfect["win_rate_random"] > 0.7
    rand = svr.score(task, svr.random_player(np.random.default_rng(2)), _ctx(profile))
    assert rand["loss_rate"] > 0.6 and rand["loss_rate_second"] >= rand["loss_rate_first"] - 0.1


def test_learner_sees_no_referee_and_illegal_moves_are_refused():
    task = svr.make_task(10, task_rng("search_vs_rl", 10, 0), SMOKE)
    assert set(vars(task.public)) == {"game", "train_games"}
    with pytest.raises(ValueError, match="illegal"):
        svr.score(task, lambda state: 0, _ctx())  # always the same square: illegal by the second move
    with pytest.raises(TypeError):
        svr.score(task, "not a policy", _ctx())


def test_mcts_with_no_training_does_not_lose():
    profile = dataclasses.replace(SMOKE, eval_games=10, mcts_simulations=1000)
    out = evaluate(svr.PROBE, svr.PROBE.contender("mcts"), 10, [0, 1], profile)
    assert all(m["loss_rate"] <= 0.1 for m in out)
    assert all(m["train_moves"] == 0 for m in out)


@pytest.mark.parametrize("arm", ["dqn_selfplay", "pg_selfplay"])
def test_deep_arms_train_and_return_a_legal_deterministic_policy(arm):
    a = evaluate(svr.PROBE, svr.PROBE.contender(arm), 20, [0], SMOKE)
    b = evaluate(svr.PROBE, svr.PROBE.contender(arm), 20, [0], SMOKE)
    assert a == b
    assert a[0]["train_moves"] >= 20 * 5  # every tic-tac-toe game has at least 5 moves


@pytest.mark.slow
def test_dqn_learns_to_beat_a_random_player_before_it_stops_losing_to_a_perfect_one():
    profile = dataclasses.replace(svr.PROFILES["quick"], eval_games=50)
    few = evaluate(svr.PROBE, svr.PROBE.contender("dqn_selfplay"), 30, [0], dataclasses.replace(profile, min_buffer=32))
    many = evaluate(svr.PROBE, svr.PROBE.contender("dqn_selfplay"), 2000, [0], profile)
    assert many[0]["win_rate_random"] > few[0]["win_rate_random"] + 0.1 and many[0]["win_rate_random"] > 0.7
    assert many[0]["loss_rate"] > 0.3  # at 2,000 games (quick: 0.84-0.99 over 3 seeds) it still loses to minimax
