"""The command line: every bad input is one line on stderr, exit code 2, nothing written."""

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from deeplimits.cli import main


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deeplimits.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


BAD = [
    (["run", "parit"], "did you mean parity"),
    (["show", "nosuchlimit"], "unknown limit"),
    (["run", "parity", "--profile", "fast"], "'fast' is not one of 'smoke', 'quick', 'paper'"),
    (["run", "parity", "--set", "d"], "--set expects name=value"),
    (["run", "parity", "--set", "d=1"], "out of range"),
    (["run", "parity", "--set", "d=ten"], "cannot read"),
    (["run", "parity", "--set", "nope=3"], "no knob or setting"),
    (["run", "parity", "--seeds", "0"], "seeds must be at least 1"),
    (["run", "parity", "--device", "tpu"], "'tpu' is not one of 'cpu', 'cuda', 'auto'"),
    (["run", "parity", "--backend", "spark"], "'spark' is not one of 'local', 'ray'"),
    (["run", "parity", "--bogus"], "No such option"),
    (["export", "--format", "xlsx"], "'xlsx' is not one of 'csv', 'json', 'parquet'"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    code = main([*args, "--out", str(out)] if args[0] in ("run", "export") else args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()  # nothing is created before the input is valid


def test_unwritable_out(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", "parity", "--profile", "smoke", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert "cannot write to --out" in err and len(err.strip().splitlines()) == 1


def test_corrupt_store_via_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "trials.sqlite").write_bytes(b"garbage" * 50)
    assert main(["run", "parity", "--profile", "smoke", "--out", str(tmp_path)]) == 2
    assert "not a deeplimits store" in capsys.readouterr().err
    assert (tmp_path / "trials.sqlite").read_bytes() == b"garbage" * 50


def test_list_show_run_export_end_to_end(tmp_path: Path) -> None:
    assert cli("list").returncode == 0 and "parity" in cli("list").stdout
    shown = cli("show", "parity")
    assert shown.returncode == 0 and "gf2_elimination" in shown.stdout
    out = tmp_path / "out"
    ran = cli("run", "parity", "--profile", "smoke", "--set", "d=4,6", "--seeds", "3", "--out", str(out), "--jobs", "1",
              "--no-budget-check")
    assert ran.returncode == 0, ran.stderr
    assert "parity" in ran.stdout and (out / "report" / "index.html").exists()
    exported = cli("export", "--format", "csv", "--out", str(out))
    with sqlite3.connect(out / "trials.sqlite") as db:  # every contender (and any budget-check trial)
        stored = db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    assert exported.returncode == 0 and stored >= 2 * 2 * 3
    assert (out / "trials.csv").read_text().count("\n") == 1 + stored
    assert cli("report", "--out", str(out)).returncode == 0
