"""Loading a challenger: the user's file, module or scikit-learn-style estimator, made into a
`Contender` that travels to worker processes by path (never pickled code) and whose trials are
keyed by a hash of its source, so a changed challenger re-runs. Loading executes the user's code.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .probe import Answer, Contender, Context, Probe, UsageError, canonical

SIGNATURE = "fn(public, ctx) -> output"
_LOADED: dict[tuple[str, str], Any] = {}  # (spec, digest) -> the user's object, once per process


# --- small helpers ------------------------------------------------------------------------------
def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line: its type, message, and where in the user's code it came from."""
    text = " ".join(str(exc).split()) or "(no message)"
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    where = ""
    frames = inspect.getinnerframes(exc.__traceback__) if exc.__traceback__ else []
    if frames:
        last = frames[-1]
        where = f" ({Path(last.filename).name}:{last.lineno})"
    return f"{type(exc).__name__}: {text}{where}"


def digest_bytes(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()


def parse_param(item: str) -> tuple[str, Any]:
    """'n_estimators=50' -> ('n_estimators', 50); values are Python literals, else text."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip().isidentifier():
        raise UsageError(f"--param expects key=value (e.g. n_estimators=50), got {item!r}")
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        value = text.strip()
    return key.strip(), value


def _is_path(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def split_spec(spec: str) -> tuple[str, str]:
    """'file.py:make' / 'pkg.mod:make' -> (target, attribute); the attribute defaults to `make`."""
    target, sep, attr = spec.rpartition(":")
    if not sep or (len(target) == 1 and target.isalpha()):  # no colon, or only a Windows drive letter
        target, attr = spec, "make"
    if not target or not attr.isidentifier():
        raise UsageError(f"challenger {spec!r}: expected path/to/file.py:function or package.module:function")
    return target, attr


def _module_from_file(path: Path, digest: str) -> Any:
    name = f"_deeplimits_challenger_{digest[:16]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling inside the user's code look modules up by name
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))  # like running a script: its sibling modules import
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _load_module(target: str) -> tuple[Any, str]:
    """Import a challenger's module; returns it and the hash of its source."""
    if _is_path(target):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise UsageError(f"challenger file {target} does not exist")
        digest = digest_bytes(path.read_bytes())
        return _module_from_file(path, digest), digest
    if importlib.util.find_spec(target.split(".")[0]) is None:
        raise UsageError(f"challenger module {target!r} is not importable (no such module)")
    module = importlib.import_module(target)
    file = getattr(module, "__file__", None)
    source = Path(file).read_bytes() if file and Path(file).is_file() else target.encode()
    return module, digest_bytes(source)


def _positional(fn: Callable[..., Any]) -> tuple[int, int] | None:
    """(required, accepted) positional parameters, or None when the signature cannot be read."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    pos = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(p.default is p.empty for p in pos)
    accepted = 10**6 if any(p.kind == p.VAR_POSITIONAL for p in params) else len(pos)
    return required, accepted


def _learner(fn: Callable[..., Any], what: str) -> Callable[[Any, Context], Any]:
    """The user's function as fn(public, ctx); fn(public) is accepted too."""
    shape = _positional(fn)
    if shape is None or (shape[0] <= 2 <= shape[1]):
        return fn
    if shape[0] <= 1 <= shape[1]:
        return _IgnoreContext(fn)
    raise UsageError(f"{what} has the wrong signature {_sig(fn)}: a challenger is {SIGNATURE} "
                     "(or make() returning a deeplimits.Contender)")


def _sig(fn: Callable[..., Any]) -> str:
    try:
        return f"{getattr(fn, '__name__', 'fn')}{inspect.signature(fn)}"
    except (TypeError, ValueError):
        return repr(fn)


@dataclass(frozen=True)
class _IgnoreContext:
    fn: Callable[[Any], Any]

    def __call__(self, public: Any, ctx: Context) -> Any:
        return self.fn(public)


def _resolve(obj: Any, what: str) -> Contender:
    """`make` as found in the user's module: a factory returning a Contender, a Contender, or the
    learner function itself -> a Contender (its role is set to challenger later)."""
    if isinstance(obj, Contender):
        return dataclasses.replace(obj, fn=_learner(obj.fn, what) if not obj.batched else obj.fn)
    if isinstance(obj, type) or not callable(obj):
        raise UsageError(f"{what} is {type(obj).__name__}, not a function: a challenger is {SIGNATURE} "
                         "(or make() returning a deeplimits.Contender)")
    shape = _positional(obj)
    if shape is not None and shape[0] == 0:  # a factory: make() -> Contender | function
        try:
            made = obj()
        except Exception as exc:  # noqa: BLE001 - the user's code: one line, exit 2
            raise UsageError(f"{what}() raised {one_line(exc)}") from None
        if isinstance(made, Contender):
            return _resolve(made, f"{what}()")
        if callable(made) and not isinstance(made, type):
            return Contender(getattr(made, "__name__", "challenger"), "challenger", _learner(made, f"{what}()"),
                             _doc(made))
        raise UsageError(f"{what}() returned {type(made).__name__}; expected a deeplimits.Contender "
                         f"or a function {SIGNATURE}")
    return Contender(getattr(obj, "__name__", "challenger"), "challenger", _learner(obj, what), _doc(obj))


def _doc(fn: Any) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _load(spec: str, digest: str | None = None) -> tuple[Contender, str]:
    """The user's contender from `spec` (cached per process); checks the source did not change."""
    target, attr = split_spec(spec)
    key = (spec, digest or "")
    if digest is not None and key in _LOADED:
        return _LOADED[key], digest
    try:
        module, found = _load_module(target)
    except UsageError:
        raise
    except BaseException as exc:  # noqa: BLE001 - a broken user module: one line, exit 2 (SystemExit too)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UsageError(f"cannot import challenger {target}: {one_line(exc)}") from None
    if digest is not None and found != digest:
        raise RuntimeError(f"challenger source {target} changed during the run; run the command again")
    if not hasattr(module, attr):
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__]
        raise UsageError(f"challenger {target} has no {attr!r}" + (f"; it defines {', '.join(names)}" if names else ""))
    contender = _resolve(getattr(module, attr), f"{target}:{attr}")
    _LOADED[(spec, found)] = contender
    return contender, found


@dataclass(frozen=True)
class LoadedFn:
    """A challenger's function as a picklable reference (spec + source hash): a worker process
    imports the user's file or module itself instead of receiving pickled code."""

    spec: str
    digest: str
    metrics: tuple[str, ...] = ()

    def __call__(self, public: Any, ctx: Any) -> Any:
        contender, _ = _load(self.spec, self.digest)
        out = contender.fn(public, ctx)
        _refuse_self_scoring(out, self.metrics)
        return out


def _refuse_self_scoring(out: Any, metrics: tuple[str, ...]) -> None:
    """A challenger returns an output for the probe to score, never its own metrics."""
    outputs = out if isinstance(out, list) else [out]
    for o in outputs:
        o = o.output if isinstance(o, Answer) else o
        if isinstance(o, dict) and o and set(map(str, o)) <= set(metrics):
            raise ValueError(f"the challenger returned metrics ({', '.join(map(str, o))}); it must return its "
                             "output (e.g. predictions for the test inputs): the probe computes the metrics")


# --- estimators ---------------------------------------------------------------------------------
def _estimator_class(spec: str) -> type:
    target, sep, attr = spec.rpartition(":")
    if not sep:
        target, _, attr = spec.rpartition(".")
    if not target or not attr:
        raise UsageError(f"--estimator {spec!r}: expected package.module:Class, "
                         "e.g. sklearn.ensemble:RandomForestClassifier")
    try:
        module = importlib.import_module(target)
    except Exception as exc:  # noqa: BLE001 - the user's module: one line, exit 2
        raise UsageError(f"cannot import estimator module {target}: {one_line(exc)}") from None
    cls = getattr(module, attr, None)
    if not isinstance(cls, type) or not all(callable(getattr(cls, m, None)) for m in ("fit", "predict")):
        raise UsageError(f"--estimator {spec}: not a class with fit and predict (scikit-learn style)")
    return cls


@dataclass(frozen=True)
class EstimatorFn:
    """Fit a scikit-learn-style estimator on the probe's arrays; its test predictions are the output."""

    spec: str
    params: tuple[tuple[str, Any], ...]
    adapter: Callable[[Any], tuple[Any, Any, Any]]

    def __call__(self, public: Any, ctx: Any) -> Any:
        arrays = self.adapter(public)
        if not isinstance(arrays, tuple) or len(arrays) != 3:
            raise TypeError("the probe's as_arrays must return (x_train, y_train, x_test)")
        x_train, y_train, x_test = arrays
        est = _estimator_class(self.spec)(**dict(self.params))
        get_params = getattr(est, "get_params", None)
        if callable(get_params) and "random_state" in get_params() and "random_state" not in dict(self.params):
            est.set_params(random_state=ctx.rng_seed % 2**32)  # reproducible per (limit, knob, seed)
        est.fit(x_train, y_train)
        pred = np.asarray(est.predict(x_test))
        if pred.ndim == 0 or pred.shape[0] != len(x_test) or pred.shape[1:] != np.shape(y_train)[1:]:
            raise ValueError(f"the estimator's predictions have shape {pred.shape}; expected "
                             f"{(len(x_test), *np.shape(y_train)[1:])} (one per test input, shaped like y_train)")
        return pred


def estimator_contender(probe: Probe, spec: str | type, params: Mapping[str, Any] | None = None,
                        name: str | None = None) -> Contender:
    """A challenger that fits `spec` (a class or 'package.module:Class') on `probe.as_arrays(public)`."""
    adapter = getattr(probe, "as_arrays", None)
    if adapter is None:
        accepting = [p.id for p in _registered() if getattr(p, "as_arrays", None) is not None]
        raise UsageError(f"limit {probe.id} does not accept an estimator (its task is not declared as arrays); "
                         + (f"limits that do: {', '.join(accepting)}" if accepting else "no registered limit does yet")
                         + "; use --contender instead")
    if isinstance(spec, type):
        spec = f"{spec.__module__}:{spec.__qualname__}"
    cls = _estimator_class(spec)
    params = dict(params or {})
    try:
        cls(**params)
    except Exception as exc:  # noqa: BLE001 - bad params: one line, exit 2
        raise UsageError(f"--estimator {spec} with {params}: {one_line(exc)}") from None
    package = sys.modules.get(cls.__module__.split(".")[0])
    version = str(getattr(package, "__version__", ""))
    digest = digest_bytes(spec, canonical(params), version)
    shown = ", ".join(f"{k}={v!r}" for k, v in sorted(params.items()))
    base = name or (f"{cls.__name__}({shown})" if shown else cls.__name__)
    return Contender(f"{base}@{digest[:8]}", "challenger", EstimatorFn(spec, tuple(sorted(params.items())), adapter),
                     f"{cls.__module__}.{cls.__name__}({shown}) fitted on the probe's training arrays "
                     f"({cls.__module__.split('.')[0]} {version})")


def load_challenger(probe: Probe, contender: str | Contender | Callable[..., Any], name: str | None = None
                    ) -> Contender:
    """A user's challenger as a Contender with role `challenger` and a name that carries its source hash."""
    metrics = tuple(m.name for m in probe.metrics)
    if isinstance(contender, str):
        made, digest = _load(contender)
        target, attr = split_spec(contender)
        if _is_path(target):
            contender = f"{Path(target).expanduser().resolve()}:{attr}"
            _LOADED[(contender, digest)] = made
        fn: Callable[..., Any] = LoadedFn(contender, digest, metrics)
    else:
        made = _resolve(contender, getattr(contender, "__name__", None) or getattr(contender, "name", "challenger"))
        digest, fn = _digest_of(made.fn), made.fn
        ref = _importable(made.fn)
        if ref is not None:  # a module-level function: workers import it by name (hash of its module's file)
            digest = _load(ref)[1]
            fn = LoadedFn(ref, digest, metrics)
    base = name or made.name
    if "@" in base:
        raise UsageError(f"challenger name {base!r}: '@' is reserved for the source hash")
    return Contender(f"{base}@{digest[:8]}", "challenger", fn, made.description, made.batched, made.tuning)


def _importable(fn: Any) -> str | None:
    """'module:function' for a function that a worker can import by name, else None."""
    module, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in qual or "." in qual or module.startswith("_deeplimits"):
        return None
    try:
        found = getattr(importlib.import_module(module), qual, None)
    except Exception:  # noqa: BLE001 - not importable here: it runs inline
        return None
    return f"{module}:{qual}" if found is fn else None


def _digest_of(fn: Any) -> str:
    """Hash of the source that defines `fn` (its whole file where known: helpers may change too)."""
    target = getattr(fn, "fn", fn)
    try:
        file = inspect.getsourcefile(target)
        if file and Path(file).is_file():
            return digest_bytes(Path(file).read_bytes(), getattr(target, "__qualname__", ""))
        return digest_bytes(inspect.getsource(target))
    except (TypeError, OSError):
        return digest_bytes(repr(getattr(target, "__qualname__", target)))


def _registered() -> list[Probe]:
    from . import registry

    return list(registry.all_probes().values())


