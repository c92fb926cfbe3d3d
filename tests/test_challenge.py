"""`deeplimits challenge`: a challenger sees the learner's view, is scored by the probe, runs in the
worker pool, is re-run when its source changes, and every bad input is one line (exit 2) or a failed
trial with its text, with nothing stored lost. The toys are registered through the entry-point group."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import deeplimits
from deeplimits import registry
from deeplimits.cli import main
from deeplimits.store import Store
from toy_arrays import register

TESTS = Path(__file__).parent
ORACLE = '''"""A cheating test device: regenerates the hidden test labels from the context (task seeds are
not a secret; the atlas guards against accidents, not adversaries)."""
from deeplimits import registry
from deeplimits.probe import task_rng


def make(public, ctx):
    probe = registry.get(ctx.probe_id)
    return probe.make_task(ctx.knob, task_rng(ctx.probe_id, ctx.knob, ctx.seed), ctx.profile).hidden
'''


@pytest.fixture(scope="module")
def toys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Register tests/toy_arrays.py's two toys as a third-party package would (workers see them too)."""
    site = register(tmp_path_factory.mktemp("site"))
    sys.path.append(str(site))
    registry.all_probes.cache_clear()
    yield site
    sys.path.remove(str(site))
    registry.all_probes.cache_clear()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def errors(err: str) -> list[str]:
    """stderr without the registry's warnings about probe files that do not load (other work in progress)."""
    return [line for line in err.strip().splitlines() if not line.startswith("deeplimits: warning:")]


def challenge(*args: str, out: Path) -> list[str]:
    return ["challenge", *args, "--profile", "smoke", "--out", str(out), "--no-report"]


def test_oracle_breaks_the_toy_through_the_cli_and_reruns_only_when_changed(
        toys: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    oracle = write(tmp_path / "mine" / "oracle.py", ORACLE)
    out = tmp_path / "out"
    assert main(challenge("toy_arrays", "--contender", f"{oracle}:make", "--jobs", "1", out=out)) == 0
    said = capsys.readouterr().out
    assert "breaks toy_arrays at k = 1, 2" in said and "36 trial(s) run" in said, said
    with Store(out) as store:
        names = {r.contender for r in store.records("toy_arrays")}
        assert any(n.startswith("make@") for n in names), names
        assert all(r.status == "ok" for r in store.records("toy_arrays"))
    # the same source: nothing runs again; a changed source: only the challenger's trials run
    assert main(challenge("toy_arrays", "--contender", f"{oracle}:make", "--jobs", "1", out=out)) == 0
    assert "0 trial(s) run, 36 from the store" in capsys.readouterr().out
    write(oracle, ORACLE + "\n# edited\n")
    assert main(challenge("toy_arrays", "--contender", f"{oracle}:make", "--jobs", "1", out=out)) == 0
    said = capsys.readouterr().out
    assert "9 trial(s) run, 27 from the store" in said and "breaks toy_arrays" in said, said


@pytest.mark.slow  # spawns the worker pool
def test_a_challenger_file_runs_in_the_worker_pool(toys: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    oracle = write(tmp_path / "mine" / "oracle.py", ORACLE + """

def logged(public, ctx):
    import os
    from pathlib import Path
    Path(__file__).with_name(f"pid-{os.getpid()}").write_text("")
    return make(public, ctx)
""")
    assert main(challenge("toy_arrays", "--contender", f"{oracle}:logged", "--jobs", "2", out=tmp_path / "o")) == 0
    assert "breaks toy_arrays at k = 1, 2" in capsys.readouterr().out
    pids = {int(f.name[4:]) for f in oracle.parent.glob("pid-*")}
    assert pids and os.getpid() not in pids  # it ran in spawned workers, not inline


def test_estimator_challenger_logistic_regression(toys: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = challenge("toy_arrays", "--estimator", "sklearn.linear_model:LogisticRegression", "--param", "C=1.0",
                     "--jobs", "1", out=tmp_path / "out")
    assert main(args) == 0
    said = capsys.readouterr().out
    assert "LogisticRegression(C=1.0)@" in said and "breaks toy_arrays at k = 1, 2" in said, said


def zeros(public, ctx):  # noqa: ANN001, ANN201 - a learner-view function, as a user writes it
    """Predicts class 0 everywhere."""
    return np.zeros(len(public.x_test), dtype=int)


def test_python_api_typed_overrides_and_a_failing_challenger(toys: Path, tmp_path: Path) -> None:
    res = deeplimits.challenge("toy_arrays", zeros, profile="smoke", overrides={"k": [0, 2]}, out=tmp_path,
                               jobs=1, progress=False, report=False)
    assert res.broke == [] and res.sentence.startswith("zeros@") and "does not break it" in res.sentence
    assert [r.knob for r in res.rows] == [0, 2] and all(r.challenger[0] < 0.6 for r in res.rows)
    est = deeplimits.challenge("toy_arrays", estimator="sklearn.linear_model:LogisticRegression",
                               profile="smoke", overrides={"k": "0,2"}, out=tmp_path, jobs=1, progress=False)
    assert est.broke == [2] and est.run.ran == 6  # the deep and alternative trials came from the store
    page = (tmp_path / "report" / "index.html").read_text()  # the report's leaderboard of challengers
    board = page[page.index("<h3>Challengers</h3>"):]
    board = board[:board.index("</table>")]
    assert board.index("LogisticRegression@") < board.index("zeros@")  # the one that broke it first
    assert "k = 2" in board and "fitted on the probe&#39;s training arrays" in board
    assert "Predicts class 0 everywhere." in board and "smoke profile, 200 training points, 3 seeds" in board


BAD_INPUT = [
    (["--contender", "nowhere/missing.py:make"], "does not exist"),
    (["--contender", "{broken}:make"], "cannot import challenger"),
    (["--contender", "{syntax}:make"], "SyntaxError"),
    (["--contender", "{wrong}:make"], "wrong signature"),
    (["--contender", "{wrong}:nothere"], "has no 'nothere'"),
    (["--contender", "{factory}:make"], "make() returned int"),
    (["--contender", "no_such_module_xyz:make"], "not importable"),
    (["--estimator", "sklearn.linear_model:NoSuchModel"], "not a class with fit and predict"),
    (["--estimator", "sklearn.linear_model:LogisticRegression", "--param", "bogus=1"], "bogus"),
    (["--estimator", "sklearn.linear_model:LogisticRegression", "--param", "C"], "--param expects key=value"),
    (["--param", "C=1"], "--param goes with --estimator"),
    ([], "give exactly one of"),
    (["--contender", "{wrong}:make", "--address", "auto"], "add --backend ray"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[m for _, m in BAD_INPUT])
def test_bad_input_is_one_line_exit_2_nothing_written(toys: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                     args: list[str], message: str) -> None:
    files = {"broken": write(tmp_path / "broken.py", "import no_such_module_xyz\n"),
             "syntax": write(tmp_path / "syntax.py", "def make(:\n"),
             "wrong": write(tmp_path / "wrong.py", "def make(a, b, c):\n    return a\n"),
             "factory": write(tmp_path / "factory.py", "def make():\n    return 3\n")}
    args = [a.format(**files) for a in args]
    out = tmp_path / "out"
    assert main(challenge("toy_arrays", *args, out=out)) == 2
    err = errors(capsys.readouterr().err)
    assert len(err) == 1 and message in err[0], err
    assert not (out / "trials.sqlite").exists()


def test_estimator_on_a_limit_without_arrays(toys: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(challenge("toy", "--estimator", "sklearn.linear_model:LogisticRegression", out=tmp_path)) == 2
    err = errors(capsys.readouterr().err)
    assert len(err) == 1 and "does not accept an estimator" in err[0] and "toy_arrays" in err[0], err


FAILING = '''import numpy as np
from deeplimits.probe import Answer


class Raises:
    def __init__(self, **params):
        pass

    def fit(self, x, y):
        raise RuntimeError("my estimator cannot fit")

    def predict(self, x):
        return x


class WrongShape(Raises):
    def fit(self, x, y):
        return self

    def predict(self, x):
        return np.zeros(3)


def metrics(public, ctx):
    return {"accuracy": 1.0}


def out_of_range(public, ctx):
    return 7.0


def claims(public, ctx):
    return Answer(np.zeros(len(public.x_test), dtype=int), {"accuracy": 1.0})
'''


def test_failing_challengers_are_failed_trials_and_lose_nothing(toys: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "mods" / "failing_things.py", FAILING)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    out = tmp_path / "out"
    assert main(challenge("toy_arrays", "--contender", f"{tmp_path / 'mods' / 'failing_things.py'}:claims",
                          "--jobs", "1", out=out)) == 0
    assert "does not break it" in capsys.readouterr().out  # its own accuracy claim was dropped: the probe scored it
    with Store(out) as store:
        before = {r.key: r.metrics for r in store.records("toy_arrays") if not r.contender.startswith("claims@")}
    cases = [(["--estimator", "failing_things:Raises"], "RuntimeError: my estimator cannot fit"),
             (["--estimator", "failing_things:WrongShape"], "predictions have shape (3,)"),
             (["--contender", "failing_things:metrics"], "it must return its output"),
             (["--contender", "failing_things:out_of_range"], "ValueError: expected 400 predictions")]
    for args, error in cases:
        assert main(challenge("toy_arrays", *args, "--jobs", "1", out=out)) == 1
        said = capsys.readouterr().out
        assert "challenger trial(s) failed" in said and error in said and "does not break it" in said, said
    with Store(out) as store:
        after = {r.key: r.metrics for r in store.records("toy_arrays")}
    assert all(after[k] == v for k, v in before.items())


def test_out_of_range_output_is_a_failed_trial(toys: Path, tmp_path: Path) -> None:
    res = deeplimits.challenge("toy", lambda public, ctx: 7.0, profile="smoke", overrides={"k": [0, 1]},
                               out=tmp_path, jobs=1, progress=False, report=False)
    assert res.failed and "outside its range" in res.failed[0].error and res.broke == []


def test_the_learner_view_and_estimator_support(toys: Path, capsys: pytest.CaptureFixture) -> None:
    from deeplimits.challenge import learner_view

    said = "\n".join(learner_view(registry.get("toy_arrays")))  # what `deeplimits show toy_arrays` prints
    assert "Public(x_train: numpy.ndarray[float64] (200, 5)" in said and "estimator: accepted" in said
    assert "fn(public, ctx) -> output" in said and "toy_arrays.score: Accuracy" in said
    assert "estimator: not accepted" in "\n".join(learner_view(registry.get("toy")))


def test_help_warns_that_a_challenger_runs_code() -> None:
    said = subprocess.run([sys.executable, "-m", "deeplimits.cli", "challenge", "--help"], capture_output=True,
                          text=True, timeout=120).stdout
    assert "executes its code" in " ".join(said.split())
