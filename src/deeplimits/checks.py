"""`check_probe`: the conformance kit every probe passes (as scikit-learn's `check_estimator`).

It runs the probe's smoke profile twice in a scratch folder and checks the contract: the docstring
template, the profiles, that every trial finishes with in-range metrics, that a fixed seed gives the
same numbers, that the alternative/remedy beats chance, and that the report renders the probe.
Third-party probes call it from their own tests.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from .probe import PROFILE_NAMES, Probe, Profile, Threshold

DOCSTRING_FIELDS = ("Claim:", "Source:", "Setup:", "Deep contender:", "Metric:", "Reference figure:")


class ProbeCheckError(AssertionError):
    """A probe breaks the contract; the message says where."""


def _fail(probe: Probe, what: str) -> None:
    raise ProbeCheckError(f"probe {probe.id}: {what}")


def check_structure(probe: Probe) -> None:
    module = sys.modules.get(probe.make_task.__module__)
    doc = (module.__doc__ if module else "") or ""
    missing = [f for f in DOCSTRING_FIELDS if f not in doc]
    if not ("Alternative" in doc or "Remedy" in doc):
        missing.append("Alternative/remedy:")
    if missing:
        _fail(probe, f"module docstring lacks {', '.join(missing)}")
    if not probe.claim or not probe.sources or probe.version < 1:
        _fail(probe, "needs a claim, at least one source and a version >= 1")
    if not any(c.role in ("alternative", "remedy") for c in probe.contenders):
        _fail(probe, "needs an alternative or remedy contender")
    for name in PROFILE_NAMES:
        prof = probe.profile(name)
        if not isinstance(prof, Profile) or not dataclasses.is_dataclass(prof) or prof.name != name:
            _fail(probe, f"profile {name!r} must be a Profile dataclass named {name!r}")
        if not prof.knob or prof.seeds < 1:
            _fail(probe, f"profile {name!r} needs knob values and seeds >= 1")
        for v in prof.knob:
            probe.knob.check(v)
        hash(prof)  # frozen: profiles must be immutable


def _metrics_by_trial(records: list) -> dict[tuple, dict[str, float]]:
    return {(r.contender, r.knob, r.seed): r.metrics for r in records}


def check_probe(probe: Probe, profile: str = "smoke", tol: float = 1e-5) -> None:
    """Raise ProbeCheckError when `probe` breaks the contract; return None when it conforms."""
    from .report import build_report
    from .runner import run

    check_structure(probe)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(2):
            out = Path(tmp) / f"run{i}"
            res = run(probes=[probe], profile=profile, out=out, jobs=1, progress=False, report=False)
            if res.failed:
                r = res.failed[0]
                _fail(probe, f"{len(res.failed)} failed trial(s); {r.contender} at {r.knob}: {r.error}")
            runs.append(_metrics_by_trial(res.records))
        first, second = runs
        if first.keys() != second.keys():
            _fail(probe, "the two runs produced different trials")
        for key, metrics in first.items():
            for name, value in metrics.items():
                other = second[key].get(name)
                if other is None or not math.isclose(value, other, rel_tol=tol, abs_tol=tol):
                    _fail(probe, f"not deterministic: {key} {name} = {value} then {other}")
        _check_beats_chance(probe, res.records)
        index = build_report(out)
        if probe.id not in Path(index).read_text(encoding="utf-8"):
            _fail(probe, "the report does not render this probe")


def _check_beats_chance(probe: Probe, records: list) -> None:
    """The alternative/remedy must beat chance on the rule metric (averaged over the smoke trials)."""
    metric = probe.metric(probe.rule.metric if isinstance(probe.rule, Threshold) else probe.control.metric
                          or probe.rule.metric)
    if metric.chance is None:
        return
    helpers = {c.name for c in probe.contenders if c.role in ("alternative", "remedy")}
    means = []
    for name in helpers:
        values = [r.metrics[metric.name] for r in records if r.contender == name and metric.name in r.metrics]
        if values:
            means.append(float(np.mean(values)))
    if not means:
        _fail(probe, f"no alternative/remedy reports {metric.name}")
    best = max(means) if metric.direction == "higher" else min(means)
    if not metric.better(best, metric.chance):
        _fail(probe, f"the best alternative/remedy ({best:.3g}) does not beat chance ({metric.chance}) "
                     f"on {metric.name}")
