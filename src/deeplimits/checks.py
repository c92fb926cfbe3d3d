"""`check_probe`: the conformance kit every probe passes (as scikit-learn's `check_estimator`).

It checks the fairness rules of DESIGN.md that can be checked mechanically — (1) at least two deep
arms, each with its documented tuning; (4) the positive control on the claim's own metric with a
success line clearly above chance; (5) no oracle among the helpers; (6) the learner's view: no
hidden array (test labels, the rule) inside what contenders see — then runs the smoke profile twice
in a scratch folder: every trial finishes with in-range metrics, a fixed seed gives the same numbers,
the alternative/remedy beats chance, and the report renders the probe. Third-party probes call it
from their own tests.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from .probe import PROFILE_NAMES, Probe, Profile, Ratio, Task, Threshold, task_rng

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
        for f in probe.budget_fields:
            if not isinstance(getattr(prof, f, None), int | float) or isinstance(getattr(prof, f), bool):
                _fail(probe, f"budget field {f!r} must be a number in profile {name!r}")
        if "epochs" in probe.budget_fields and hasattr(prof, "patience") and "patience" not in probe.budget_fields:
            _fail(probe, "rule 3: the budget check scales epochs but not early stopping's patience, so it cannot "
                         "move where early stopping ends training first; add 'patience' to budget_fields")
    check_fairness(probe)


def check_fairness(probe: Probe) -> None:
    """Fairness rules 1, 4 and 5 of DESIGN.md, from the declaration alone."""
    arms = probe.deep_arms
    if len(arms) < 2:
        _fail(probe, f"rule 1: declare at least two standard deep arms for the data (has {[a.name for a in arms]})")
    untuned = [a.name for a in arms if not a.tuning.strip()]
    if untuned:
        _fail(probe, f"rule 1: deep arm(s) {untuned} do not document how their hyperparameters were fixed "
                     "(Contender.tuning: a small search at the easy end on a validation split)")
    rule, control = probe.rule, probe.control
    metric_name = control.metric or rule.metric
    if not isinstance(rule, Ratio) and metric_name != rule.metric:
        _fail(probe, f"rule 4: the positive control must use the claim's own metric {rule.metric!r}, "
                     f"not {metric_name!r}")
    metric = probe.metric(metric_name)
    success = control.success if control.success is not None else getattr(rule, "success", None)
    if metric.diagnostic:
        _fail(probe, f"rule 4: the control metric {metric_name!r} is a contender's own diagnostic")
    if metric.chance is None or success is None:
        _fail(probe, f"rule 4: the control metric {metric_name!r} needs a chance level and a success line")
    span = metric.hi - metric.lo if math.isfinite(metric.hi - metric.lo) else abs(metric.chance) or 1.0
    if not metric.better(success, metric.chance) or abs(success - metric.chance) < 0.1 * span:
        _fail(probe, f"rule 4: the control's success line {success} is not clearly better than chance "
                     f"{metric.chance} on {metric_name}")
    for c in probe.contenders:
        if c.role in ("alternative", "remedy") and "oracle" in f"{c.name} {c.description}".lower():
            _fail(probe, f"rule 5: helper {c.name!r} is an oracle; an oracle is a test device, never what "
                         "validates 'holds'")


def _arrays(obj: object, depth: int = 0) -> list[np.ndarray]:
    """Every array reachable from obj (dataclass fields, mappings, sequences, attributes)."""
    if depth > 5 or obj is None or isinstance(obj, str | bytes | int | float | bool):
        return []
    if isinstance(obj, np.ndarray):
        return [obj] if obj.dtype != object else [a for x in obj.ravel() for a in _arrays(x, depth + 1)]
    if type(obj).__module__.startswith("torch") and hasattr(obj, "numpy"):
        return [obj.detach().cpu().numpy()]
    if isinstance(obj, dict):
        items = list(obj.values())
    elif isinstance(obj, list | tuple | set | frozenset):
        items = list(obj)
    elif dataclasses.is_dataclass(obj):
        items = [getattr(obj, f.name) for f in dataclasses.fields(obj)]
    elif hasattr(obj, "__dict__") and not callable(obj):
        items = list(vars(obj).values())
    else:
        return []
    return [a for x in items for a in _arrays(x, depth + 1)]


def check_learner_view(probe: Probe, profile: str = "smoke") -> None:
    """Rule 6: make_task returns a Task, and no hidden array appears in its public half."""
    prof = probe.profile(profile)
    for knob in prof.knob:
        task = probe.make_task(knob, task_rng(probe.id, knob, 0), prof)
        if not isinstance(task, Task):
            _fail(probe, f"rule 6: make_task must return deeplimits.Task(public, hidden), got {type(task).__name__}")
        public = _arrays(task.public)
        for secret in _arrays(task.hidden):
            for seen in public:
                same = seen is secret or (secret.size >= 16 and seen.shape == secret.shape
                                          and np.array_equal(seen, secret))
                if same:
                    _fail(probe, f"rule 6: a hidden array {secret.shape} (test labels or the rule) is in "
                                 f"what contenders see at {probe.knob.name}={knob}")


def _metrics_by_trial(records: list) -> dict[tuple, dict[str, float]]:
    return {(r.contender, r.knob, r.seed): r.metrics for r in records}


def check_probe(probe: Probe, profile: str = "smoke", tol: float = 1e-5) -> None:
    """Raise ProbeCheckError when `probe` breaks the contract; return None when it conforms."""
    from .report import build_report
    from .runner import run

    check_structure(probe)
    check_learner_view(probe, profile)
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
