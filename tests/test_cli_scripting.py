"""The command line in a scripted workflow: --version, --json everywhere, exit codes a script can
use (3: failed trials; 4: a verdict changed against a baseline), export to stdout, 80 columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import deeplimits
from deeplimits import cli, registry

from toy import make_probe


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> deeplimits.Probe:
    probe = make_probe()
    monkeypatch.setattr(registry, "all_probes", lambda: {probe.id: probe})
    return probe


def run_json(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, dict]:
    code = cli.main(list(args))
    return code, json.loads(capsys.readouterr().out)


def test_version(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"deeplimits {deeplimits.__version__}"


def test_list_and_show_as_json(capsys: pytest.CaptureFixture) -> None:
    code, rows = run_json(capsys, "list", "--json")
    assert code == 0 and {"id", "family", "claim", "status", "version"} <= set(rows[0])
    assert {r["id"] for r in rows} >= {"parity"}
    code, shown = run_json(capsys, "show", "parity", "--json")
    assert code == 0 and shown["id"] == "parity" and shown["rule"]["metric"] == "accuracy"
    assert len([c for c in shown["contenders"] if c["role"] == "deep"]) >= 2


def test_list_fits_80_columns(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.console, "width", 80)
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and max(len(line) for line in lines) <= 80 and any("…" in line for line in lines)


def test_run_json_verdicts_json_and_baseline(toy: deeplimits.Probe, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    out = str(tmp_path / "out")
    code, res = run_json(capsys, "run", "toy", "--profile", "smoke", "--jobs", "1", "--out", out, "--json",
                         "--no-report")
    assert code == 0 and res["verdicts"][0]["limit"] == "toy" and res["verdicts"][0]["cells"]
    code, stored = run_json(capsys, "verdicts", "toy", "--out", out, "--json")
    assert code == 0 and stored["verdicts"][0]["outcome"] == res["verdicts"][0]["outcome"]
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(stored))
    assert cli.main(["verdicts", "toy", "--out", out, "--baseline", str(baseline)]) == 0
    changed = {"verdicts": [{**stored["verdicts"][0], "outcome": "does not hold"}]}
    baseline.write_text(json.dumps(changed))
    capsys.readouterr()
    assert cli.main(["verdicts", "toy", "--out", out, "--baseline", str(baseline)]) == cli.VERDICT_CHANGED
    assert "verdicts changed against the baseline: toy" in capsys.readouterr().err
    baseline.write_text("{not json")
    assert cli.main(["verdicts", "toy", "--out", out, "--baseline", str(baseline)]) == 2


def test_failed_trials_exit_3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(public, ctx):
        raise RuntimeError("boom")

    probe = make_probe()
    probe = probe.with_contenders(deeplimits.Contender("broken", "alternative", broken))
    monkeypatch.setattr(registry, "all_probes", lambda: {probe.id: probe})
    code = cli.main(["run", "toy", "--profile", "smoke", "--jobs", "1", "--out", str(tmp_path / "o"), "--quiet",
                     "--no-report"])
    assert code == cli.TRIALS_FAILED


def test_export_to_stdout_long_and_wide(toy: deeplimits.Probe, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = str(tmp_path / "out")
    assert cli.main(["run", "toy", "--profile", "smoke", "--jobs", "1", "--out", out, "--quiet", "--no-report"]) == 0
    capsys.readouterr()
    assert cli.main(["export", "--out", out, "--path", "-", "--format", "json", "--shape", "long"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {"metric", "value", "limit", "seed"} <= set(rows[0])
    assert cli.main(["export", "--out", out, "--path", "-"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "m_accuracy" in header and "limit" in header


def test_to_pandas_shapes(toy: deeplimits.Probe, tmp_path: Path) -> None:
    res = deeplimits.run(["toy"], profile="smoke", out=tmp_path / "o", jobs=1, progress=False, report=False)
    wide, long = res.to_pandas(), res.to_pandas("long")
    assert len(long) == len(wide) and "m_accuracy" in wide and set(long["metric"]) == {"accuracy"}
    cells = res.cells()
    assert {"limit", "contender", "knob", "metric", "mean", "lo", "hi", "n"} <= set(cells.columns)
