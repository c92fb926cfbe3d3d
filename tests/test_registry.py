"""Discovery (package + entry points), lookup errors, override validation, the process-pool backend."""

import dataclasses

import pytest

import deeplimits
from deeplimits import profiles, registry
from deeplimits.probe import UsageError

from toy import make_probe


def test_unknown_id_suggests_the_closest() -> None:
    with pytest.raises(UsageError, match="did you mean parity"):
        registry.get("parrity")
    with pytest.raises(UsageError, match="known:"):
        registry.get("zzzzzz")


def test_entry_point_probes_are_found(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeEntryPoint:
        name, value = "toy", "toy:PROBE"

        def load(self):
            return make_probe()

    monkeypatch.setattr(registry, "entry_points", lambda group: [FakeEntryPoint()])
    registry.all_probes.cache_clear()
    try:
        assert registry.get("toy").family == "toys"
    finally:
        registry.all_probes.cache_clear()


def test_overrides_are_typed_and_validated() -> None:
    probe = make_probe()  # the toy, not a real probe: real probes change their settings
    prof = profiles.resolve(probe, "smoke", {"k": "6,8", "budget": "50", "slope": "0.5"}, seeds=4)
    assert prof.knob == (6, 8) and prof.budget == 50 and prof.slope == 0.5 and prof.seeds == 4
    with pytest.raises(UsageError, match="cannot read"):
        profiles.resolve(probe, "smoke", {"budget": "many"})
    with pytest.raises(UsageError, match="none of the selected limits"):
        profiles.check_names([probe, make_probe(id="toy2")], {"nothing": "1"})


def test_process_pool_gives_the_same_numbers_as_inline(tmp_path) -> None:
    probe = registry.get("parity")
    kw = dict(profile="smoke", overrides={"d": "4,6", "steps": "100"}, seeds=2, progress=False, report=False)
    inline = deeplimits.run(["parity"], out=tmp_path / "a", jobs=1, **kw)
    pooled = deeplimits.run(["parity"], out=tmp_path / "b", jobs=2, **kw)
    metrics = lambda res: {(r.contender, r.knob, r.seed): r.metrics for r in res.records}
    a, b = metrics(inline), metrics(pooled)
    assert a.keys() == b.keys()
    for key in a:
        for name, value in a[key].items():
            assert b[key][name] == pytest.approx(value, rel=1e-5, abs=1e-6), (key, name)
    assert dataclasses.is_dataclass(probe.profile("smoke"))


def test_missing_extra_is_named(tmp_path) -> None:
    probe = make_probe(requires=("surely_not_installed_module",), extra="rl")
    res = deeplimits.run(probes=[probe], out=tmp_path, jobs=1, progress=False, report=False)
    assert "toy" in res.skipped and "pip install 'deeplimits[rl]'" in res.skipped["toy"]
    from deeplimits import runner

    with pytest.raises(UsageError, match=r"needs the \[rl\] extra"):
        runner.plan(["toy"], "quick", None, None, probes=[probe])
