"""Every reproduce command the report prints runs: parsed by the real command line, it finds its
trials in the store (nothing re-runs), including settings that are tuples of tuples."""

from __future__ import annotations

import dataclasses
import re
import shlex
from html import unescape
from pathlib import Path

import pytest

import deeplimits
from deeplimits import cli, registry
from deeplimits.report import build_report
from deeplimits.store import Store

from toy import ToyProfile, make_probe


@dataclasses.dataclass(frozen=True)
class NestedProfile(ToyProfile):
    targets: tuple[tuple[str, float], ...] = (("a", 0.9), ("b", 0.5))
    widths: tuple[int, ...] = (8, 16)


def nested_probe() -> deeplimits.Probe:
    profiles = {n: NestedProfile(n, knob=(0, 1, 2, 4), seeds=3) for n in ("smoke", "quick", "paper")}
    return make_probe(profiles=profiles)


def commands(html: str) -> list[list[str]]:
    found = re.findall(r'<pre class="cmd">(.*?)</pre>', html, flags=re.S)
    return [shlex.split(unescape(c)) for c in found]


def rerun(cmd: list[str], out: Path) -> int:
    assert cmd[:2] == ["deeplimits", "run"], cmd
    return cli.main([*cmd[1:], "--out", str(out), "--jobs", "1", "--no-report", "--quiet", "--no-budget-check"])


@pytest.mark.parametrize("overrides", [
    {},
    {"k": "0,2", "slope": "0.2"},
    {"targets": '[["a", 0.8], ["c", 0.25]]', "widths": "4,8,32"},
])
def test_reproduce_commands_find_their_trials(overrides: dict, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    probe = nested_probe()
    monkeypatch.setattr(registry, "all_probes", lambda: {probe.id: probe})
    out = tmp_path / "out"
    deeplimits.run(probes=[probe], profile="smoke", overrides=overrides, out=out, jobs=1, progress=False,
                   report=False, budget_check=False)
    with Store(out, create=False) as store:
        before = store.count()
    html = build_report(out, probes=[probe]).read_text(encoding="utf-8")
    cmds = commands(html)
    assert len(cmds) == 1
    if "targets" in overrides:
        assert any(part.startswith("targets=[[") for part in cmds[0])  # nested values travel as JSON
    assert rerun(cmds[0], out) == 0
    with Store(out, create=False) as store:
        assert store.count() == before  # every trial was found: the command reproduces the stored run


@pytest.mark.slow
def test_every_registered_limit_reproduces_on_smoke(tmp_path: Path) -> None:
    """The smoke atlas, then every command on its page: none raises, none re-runs a trial."""
    out = tmp_path / "out"
    probes = [p for p in registry.all_probes().values() if not p.missing_requirements()]
    deeplimits.run([p.id for p in probes], profile="smoke", out=out, jobs=2, progress=False, report=False,
                   budget_check=False)
    with Store(out, create=False) as store:
        before = store.count()
    html = build_report(out).read_text(encoding="utf-8")
    cmds = commands(html)
    assert len(cmds) == len(registry.all_probes())
    for cmd in cmds:
        assert rerun(cmd, out) in (0, 3), cmd  # 3: some trials failed (stored as such)
    with Store(out, create=False) as store:
        assert store.count() == before
