"""check_probe over every registered probe (smoke profile)."""

import pytest

import deeplimits
from deeplimits.checks import ProbeCheckError, check_probe, check_structure

PROBES = list(deeplimits.all_probes().values())


@pytest.mark.parametrize("probe", PROBES, ids=[p.id for p in PROBES])
def test_check_probe(probe: deeplimits.Probe) -> None:
    check_probe(probe)


def test_registry_finds_parity() -> None:
    assert "parity" in deeplimits.all_probes()


def test_check_probe_catches_nondeterminism() -> None:
    import numpy as np

    from toy import make_probe

    calls = iter(range(1000))

    def flaky(task, ctx):
        return float(np.clip(0.9 + next(calls) * 1e-3, 0, 1))

    probe = make_probe().with_contenders(deeplimits.Contender("line", "deep", flaky, tuning="none"),
                                         deeplimits.Contender("steep", "deep", flaky, tuning="none"), replace=True)
    probe = probe.with_contenders(deeplimits.Contender("const", "alternative", lambda t, c: 0.99))
    with pytest.raises(ProbeCheckError, match="not deterministic"):
        check_probe(probe)


def test_check_probe_catches_weak_alternative() -> None:
    from toy import deep, make_probe, steep

    probe = make_probe().with_contenders(
        deeplimits.Contender("line", "deep", deep, tuning="none"),
        deeplimits.Contender("steep", "deep", steep, tuning="none"),
        deeplimits.Contender("coin", "alternative", lambda t, c: 0.4), replace=True)
    with pytest.raises(ProbeCheckError, match="does not beat chance"):
        check_probe(probe)


def test_structure_check_reads_the_docstring_template() -> None:
    from toy import make_probe

    check_structure(make_probe())  # tests/toy.py has the template
    undocumented = make_probe(make_task=lambda k, rng, profile: 0.0)  # this module's docstring lacks it
    with pytest.raises(ProbeCheckError, match="docstring lacks"):
        check_structure(undocumented)
