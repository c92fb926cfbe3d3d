"""The static HTML report: structure, escaping, partial results, and a real browser's rendering.

The fixed stores are written directly (parity records through Store.put: no training) or through
deeplimits.run with tiny fake probes; assertions are about structure, never a byte-exact snapshot.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

import deeplimits
from deeplimits import registry
from deeplimits.probe import Contender, Control, Knob, Metric, Probe, Profile, Ratio, Reference, Task, Threshold
from deeplimits.report import build_report, plots, render
from deeplimits.store import Store, TrialRecord, TrialSpec

HOSTILE = "<script>alert(1)</script>"
ROOT = Path(__file__).resolve().parents[1]


# --- parsing the page ------------------------------------------------------------------------
class Page(HTMLParser):
    """Sections (by id), their badges, images and text; every tag's attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.stack: list[str | None] = []
        self.tags: list[tuple[str, dict]] = []
        self.badge_open = False
        self.overview_badges: dict[str, str] = {}
        self.current_row_id: str | None = None
        self.in_id_cell = False
        self.feed(html)

    def _section(self) -> dict | None:
        for sid in reversed(self.stack):
            if sid is not None:
                return self.sections[sid]
        return None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "section":
            sid = a.get("id", "")
            self.sections[sid] = {"class": a.get("class", ""), "badges": [], "imgs": [], "text": []}
            self.stack.append(sid)
        elif tag in ("img",):
            sec = self._section()
            if sec is not None:
                sec["imgs"].append(a)
        elif tag == "span" and "badge" in (a.get("class") or ""):
            self.badge_open = True
        elif tag == "td" and a.get("class") == "id":
            self.in_id_cell = True
            self.current_row_id = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self.stack.pop()
        if tag == "span":
            self.badge_open = False
        if tag == "td":
            self.in_id_cell = False

    def handle_data(self, data: str) -> None:
        sec = self._section()
        if sec is not None:
            sec["text"].append(data)
            if self.badge_open:
                sec["badges"].append(data.strip())
                if self.current_row_id and self.stack and self.stack[-1] == "overview":
                    self.overview_badges.setdefault(self.current_row_id, data.strip())
        if self.in_id_cell and self.current_row_id is None and data.strip():
            self.current_row_id = data.strip()

    def limits(self) -> dict[str, dict]:
        return {k: v for k, v in self.sections.items() if "limit" in v["class"].split()}

    def text(self, sid: str) -> str:
        return " ".join(" ".join(self.sections[sid]["text"]).split())


def svgs(section: dict) -> list[ET.Element]:
    out = []
    for img in section["imgs"]:
        head, _, data = img["src"].partition(",")
        assert head == "data:image/svg+xml;base64", head
        out.append(ET.fromstring(base64.b64decode(data)))  # well-formed XML: text was escaped
    return out


# --- a fixed store (no training) ---------------------------------------------------------------
@dataclass(frozen=True)
class FixedProfile(Profile):
    steps: int = 100


def _never(*args):
    raise AssertionError("the fixed probe is judged from stored trials only")


def fixed_probe() -> Probe:
    """A parity-like probe whose trials are written straight into the store."""
    profiles = {n: FixedProfile(n, (4, 12), 2) for n in ("smoke", "quick", "paper")}
    return Probe(
        id="fixed", family="gradients", claim="A fixed claim for the report tests.",
        sources=("seeds/001_89d092338235e9e1.txt", "Shalev-Shwartz et al. 2017"), version=3,
        knob=Knob("d", "input bits", unit="bits"),
        metrics=(Metric("accuracy", "test accuracy", chance=0.5, lo=0, hi=1),
                 Metric("grad_var", "gradient variance", direction="lower", lo=0, log_scale=True, diagnostic=True),
                 Metric("grad_var_bound", "its bound", direction="lower", lo=0, log_scale=True, diagnostic=True),
                 Metric("samples", "samples used", direction="lower", lo=0)),
        rule=Threshold("accuracy", 0.95), profiles=profiles, make_task=_never, score=_never,
        contenders=(Contender("mlp_sgd", "deep", _never, tuning="t"), Contender("mlp_adam", "deep", _never, tuning="t"),
                    Contender("gf2_elimination", "alternative", _never)),
        references=(Reference("Shalev-Shwartz et al. 2017, Fig. 1", "setup", "d = 5 reaches 1.0", "read off a plot",
                              points=((4, 1.0),), metric="accuracy"),),
        budget=lambda p: f"{p.steps} steps",
    )


def write_fixed_store(out: Path) -> Probe:
    probe = fixed_probe()
    prof = probe.profile("smoke")
    params = prof.params()
    deep_acc = {4: [1.0, 0.99, 1.0], 12: [0.5, 0.52, 0.49]}
    grad_var = {4: [0.9, 0.8, 0.85], 12: [2e-4, -1e-4, 3e-4]}  # a negative estimate at 12
    with Store(out) as store:
        store.start_run("fixed", {"deeplimits": deeplimits.__version__, "python": "3.11", "torch": "2.x",
                                  "numpy": "2.x", "profile": "smoke", "device": "cpu", "cores": 2,
                                  "probes": {"fixed": probe.version}})
        for knob in prof.knob:
            for seed in range(3):
                for arm in ("mlp_sgd", "mlp_adam"):
                    deep = TrialSpec("fixed", probe.version, arm, "deep", knob, seed, "smoke", params)
                    store.put(TrialRecord.from_spec(deep, {"accuracy": deep_acc[knob][seed],
                                                           "grad_var": grad_var[knob][seed],
                                                           "grad_var_bound": 1.3 * 2.0 ** -knob * 16}, None, 1.0,
                                                    "cpu", "fixed"))
                alt = TrialSpec("fixed", probe.version, "gf2_elimination", "alternative", knob, seed, "smoke", params)
                store.put(TrialRecord.from_spec(alt, {"accuracy": 1.0, "samples": knob + 20.0}, None, 0.01, "cpu",
                                                "fixed"))
        store.end_run("fixed")
    return probe


@pytest.fixture(scope="module")
def parity_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("fixed-report")
    probe = write_fixed_store(out)
    index = build_report(out, probes=[probe])
    return out, index.read_text(encoding="utf-8")


def test_golden_structure(parity_report: tuple[Path, str]) -> None:
    out, html = parity_report
    assert (out / "report" / "index.html").exists()
    page = Page(html)
    for sid in ("overview", "rules", "runs"):
        assert sid in page.sections, sid
    limits = page.limits()
    fixed = limits["limit-fixed"]
    assert fixed["badges"][0] == "holds"
    text = page.text("limit-fixed")
    assert "breaking point d = 12 of 4–12" in text
    assert "deeplimits run fixed --profile smoke --seeds 3" in text  # 3 seeds stored, smoke has 2
    assert "Shalev-Shwartz et al. 2017, Fig. 1" in text and "read off a plot" in text  # the reference text
    assert "SyncedReview" in text and "seeds/001" not in text  # sources named for readers
    assert "mean over 3 seeds" in text and "Student-t" in text  # the statistics on the caption
    assert "no budget check" in text  # the probe declares no budget fields
    # accuracy vs d, then (collapsed) grad_var with grad_var_bound on one log panel, and samples
    assert len(fixed["imgs"]) == 3
    assert "2 more figures" in text
    titles = " ".join(t.strip() for t in fixed["text"])
    assert "grad_var, grad_var_bound vs d (log scale)" in titles
    assert "mean ≤ 0 at 12 not drawn" in text or "CI reaches ≤ 0 at 12" in text  # the log-axis note
    for svg in svgs(fixed):
        assert svg.tag.endswith("svg")
    # the overview: numbers per limit
    assert page.overview_badges["fixed"] == "holds"
    overview = page.text("overview")
    assert "at d = 12: mlp_sgd 0.503 [" in overview and "vs gf2_elimination 1 [1, 1]" in overview
    assert "smoke" in overview and "100 steps" in overview
    assert 'href="#rules"' in html
    runs = page.text("runs")
    assert "fixed" in runs and "smoke" in runs and "fixed v3" in runs


def test_every_registered_limit_has_a_section(tmp_path: Path) -> None:
    Store(tmp_path).close()
    page = Page(build_report(tmp_path).read_text(encoding="utf-8"))
    assert len(page.limits()) == len(registry.all_probes())
    assert all(page.overview_badges[k] == "not run" for k in registry.all_probes())


def test_self_contained(parity_report: tuple[Path, str]) -> None:
    """One folder that opens from disk: no network, no external script, stylesheet or font."""
    _, html = parity_report
    page = Page(html)
    assert sum(tag == "script" for tag, _ in page.tags) == 1  # the overview's inline filter/sort
    for tag, attrs in page.tags:
        assert not (tag == "script" and "src" in attrs)
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("src", "href") and value:
                assert value.startswith(("#", "data:")), (tag, name, value[:80])
    assert "@import" not in html and "url(" not in html


def test_rebuild_uses_cache_and_matches(parity_report: tuple[Path, str]) -> None:
    out, html = parity_report
    assert list((out / ".report-cache").glob("*.json"))
    again = build_report(out, probes=[fixed_probe()]).read_text(encoding="utf-8")
    strip = lambda t: re.sub(r"report built [^·]*·", "", t)  # noqa: E731
    assert strip(again) == strip(html)


# --- fake probes: hostile names, categorical knobs, failures, ratio rules --------------------
LEVELS = ("1-easy", "2-<i>mid</i>", "3-hard")  # Knob.order sorts values: these sort easy to hard


@dataclass(frozen=True)
class FakeProfile(Profile):
    steps: int = 1


def _evil_task(knob, rng, profile):
    return Task(float(rng.random()))


def _passthrough(task, output, ctx):
    return dict(output)


def _deep(task, ctx):
    hard = LEVELS.index(ctx.knob)
    return {"accuracy": 0.99 - 0.45 * hard + 0.005 * task}


def _deep2(task, ctx):
    return {"accuracy": 0.985 - 0.46 * LEVELS.index(ctx.knob) + 0.005 * task}


def _alt(task, ctx):
    if ctx.knob == LEVELS[2] and ctx.seed == 0:
        raise RuntimeError(f"boom {HOSTILE}")
    return {"accuracy": 0.98 + 0.01 * task}


def hostile_probe() -> Probe:
    profiles = {n: FakeProfile(n, LEVELS, 3) for n in ("smoke", "quick", "paper")}
    return Probe(
        id="evil_probe", family=f"fam {HOSTILE}", claim=f"claim {HOSTILE} & <b>bold</b>",
        sources=("source <img src=x onerror=alert(1)>",), version=1,
        knob=Knob("level", "a categorical knob", unit="<u>"),
        metrics=(Metric("accuracy", f"acc {HOSTILE}", chance=0.5, lo=0, hi=1),),
        rule=Threshold("accuracy", 0.9), profiles=profiles, make_task=_evil_task, score=_passthrough,
        contenders=(Contender(HOSTILE, "deep", _deep, "the $x^2$ $net$", tuning="t"),
                    Contender("deep2", "deep", _deep2, tuning="t"), Contender("a$b$c", "alternative", _alt)),
        references=(Reference(f"ref {HOSTILE}", "setup", "value", "verbatim",
                              points=(("1-easy", 1.0), ("nowhere", 0.5)), metric="accuracy"),),
    )


def _cost_task(knob, rng, profile):
    return Task(float(rng.random()))


def _cost_deep(task, ctx):
    return {"samples": 100.0 * ctx.knob ** 2 * (1 + 0.1 * task), "accuracy": 0.97}


def _cost_alt(task, ctx):
    return {"samples": 100.0 * (1 + 0.1 * task), "accuracy": 0.97}


def ratio_probe() -> Probe:
    profiles = {n: FakeProfile(n, (1, 2, 8), 3) for n in ("smoke", "quick", "paper")}
    return Probe(
        id="fake_ratio", family="cost", claim="Deep needs many more samples.", sources=("test",), version=1,
        knob=Knob("k", "size", harder="increasing"),
        metrics=(Metric("samples", "samples to target", direction="lower", lo=0, unit="samples", log_scale=True),
                 Metric("accuracy", "final accuracy", chance=0.5, lo=0, hi=1)),
        rule=Ratio("samples", 10.0), control=Control(metric="accuracy", success=0.9), profiles=profiles,
        make_task=_cost_task, score=_passthrough,
        contenders=(Contender("deep", "deep", _cost_deep, tuning="t"),
                    Contender("deep2", "deep", _cost_deep, tuning="t"), Contender("alt", "alternative", _cost_alt)),
    )


@pytest.fixture(scope="module")
def fake_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("fake-report")
    probes = [hostile_probe(), ratio_probe()]
    deeplimits.run(probes=probes, profile="quick", out=out, jobs=1, report=False, progress=False)
    index = build_report(out, probes=probes)
    return out, index.read_text(encoding="utf-8")


def test_hostile_names_are_text(fake_report: tuple[Path, str]) -> None:
    _, html = fake_report
    assert HOSTILE not in html and "<img src=x" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = Page(html)
    assert sum(tag == "script" for tag, _ in page.tags) == 1  # only the page's own inline script
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)
    evil = page.limits()["limit-evil_probe"]
    found = False
    for svg in svgs(evil):  # the hostile contender name is SVG text, not an element
        assert not any(el.tag.endswith("script") for el in svg.iter())
        found |= any(HOSTILE in (el.text or "") for el in svg.iter())
        assert any("a$b$c" in (el.text or "") for el in svg.iter())  # '$' is text, not mathtext
    assert found


def test_failed_trials_and_categorical_knob(fake_report: tuple[Path, str]) -> None:
    _, html = fake_report
    page = Page(html)
    evil = page.text("limit-evil_probe")
    assert "1 of 27 trials failed" in evil
    assert "boom" in evil and "RuntimeError" in evil
    assert "point(s) at nowhere not drawn" in evil  # a reference point off the categorical axis
    # it holds from the middle level on; the failed trial at the hard end is listed among the reasons
    assert page.limits()["limit-evil_probe"]["badges"][0] == "holds"
    assert "breaking point level = 2-<i>mid</i> of 1-easy, 2-<i>mid</i>, 3-hard" in evil
    assert "1 failed trial(s)" in evil
    assert len(page.limits()["limit-evil_probe"]["imgs"]) == 1


def test_ratio_rule_has_comparison_plot(fake_report: tuple[Path, str]) -> None:
    _, html = fake_report
    page = Page(html)
    sec = page.limits()["limit-fake_ratio"]
    assert sec["badges"][0] == "holds"
    text = page.text("limit-fake_ratio")
    assert "ratio deep ÷ alternative vs k" in text
    assert len(sec["imgs"]) == 3  # samples, the ratio CI, accuracy
    assert any("factor (10)" in (el.text or "") for svg in svgs(sec) for el in svg.iter())


def test_not_run_limits(tmp_path: Path) -> None:
    Store(tmp_path).close()
    html = build_report(tmp_path, probes=[ratio_probe()]).read_text(encoding="utf-8")
    page = Page(html)
    assert page.limits()["limit-fake_ratio"]["badges"][0] == "not run"
    assert not page.limits()["limit-fake_ratio"]["imgs"]
    assert "deeplimits run fake_ratio --profile quick" in page.text("limit-fake_ratio")


def test_reproduce_command() -> None:
    probe = fixed_probe()
    base = probe.profile("quick")
    import dataclasses

    assert render.reproduce(probe, base) == "deeplimits run fixed --profile quick"
    changed = dataclasses.replace(base, knob=(30, 5), seeds=3, steps=500)
    assert render.reproduce(probe, changed) == ("deeplimits run fixed --profile quick --set d=30,5 "
                                               "--set steps=500 --seeds 3")


def test_plot_functions_on_any_ax() -> None:
    """The plotting functions draw on a caller's axes (a notebook) and only return notes."""
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    axis = plots.KnobAxis([1, 2, 3])
    s = plots.Series("net", (1, 2, 3), (1.0, -0.1, 0.01), (0.5, -0.2, -0.01), (2.0, 0.1, 0.02))
    notes = plots.plot_series(ax, [s], axis, log_y=True)
    assert any("mean ≤ 0 at 2" in n for n in notes) and any("CI reaches ≤ 0 at 3" in n for n in notes)
    assert plots.plot_lines(ax, 0.5, 0.9, 2, axis) is None
    cat = plots.KnobAxis(["a", ("b", 1)])
    assert not cat.numeric and cat.x(("b", 1)) == 1.0 and cat.x("zzz") is None


# --- a real browser --------------------------------------------------------------------------
def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


@pytest.fixture(scope="session")
def browser() -> str:
    """A headless browser; where none is present the test setup installs Debian's chromium (as root,
    with apt-get), and only where that cannot be done is the browser check skipped, saying why."""
    found = _browser()
    if found is None and shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            try:
                subprocess.run(cmd, env=env, capture_output=True, timeout=600, check=False)
            except (OSError, subprocess.TimeoutExpired):
                break
        found = _browser()
    if found is None:
        pytest.skip("no headless browser, and `apt-get install chromium` was not possible here (needs root + apt)")
    return found


def test_browser_renders_page(browser: str, parity_report: tuple[Path, str], fake_report: tuple[Path, str],
                              tmp_path: Path) -> None:
    """Headless Chromium renders the page: the screenshot is not blank and the console is silent.
    The page and its screenshot are kept in deeplimits-out/report-check/ for people to look at."""
    from PIL import Image

    out, _ = parity_report
    index = out / "report" / "index.html"
    assert fake_report  # the hostile page is built too (its own checks are above)
    shot = out / "report" / "screenshot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=3000", "--window-size=1400,2400"]
    proc = subprocess.run([browser, *flags, f"--screenshot={shot}", index.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.exists(), proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    img = Image.open(shot).convert("RGB")
    small = img.resize((img.width // 4, img.height // 4))
    colours = small.getcolors(maxcolors=1_000_000) or []
    non_white = sum(n for n, c in colours if sum(c) < 3 * 245) / (small.width * small.height)
    assert len(colours) > 50 and non_white > 0.03, (len(colours), non_white)
    dom = subprocess.run([browser, *flags, "--dump-dom", index.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert 'id="limit-fixed"' in dom and "holds" in dom
    # the overview's numbers and the atlas figure, as the browser built them
    columns = ("breaking point (of range tried)", "best deep arm vs best helper there", "profile", "seeds", "budget")
    for column in columns:
        assert column in dom, column
    assert 'class="atlas"' in dom and "data:image/svg+xml;base64," in dom
    keep = ROOT / "deeplimits-out" / "report-check"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(index, keep / "index.html")
    shutil.copy(shot, keep / "screenshot.png")
