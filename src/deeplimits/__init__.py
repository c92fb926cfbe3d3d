"""deeplimits: an executable atlas of where deep learning fails.

    import deeplimits
    res = deeplimits.run(["parity"], profile="quick")
    res.verdicts["parity"].sentence
    res.to_pandas()

The contract (`Probe`, `Task`, `Contender`...) imports only numpy; the runner, the statistics and
the probes themselves (torch, scipy) load on first use, so the command line starts fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

from .probe import (  # noqa: E402
                    Answer,
                    Contender,
                    Context,
                    Control,
                    Fit,
                    Gap,
                    Knob,
                    Metric,
                    Probe,
                    Profile,
                    Ratio,
                    Reference,
                    Task,
                    Threshold,
                    UsageError,
)

_LAZY = {"all_probes": "registry", "get": "registry", "RunResult": "runner", "run": "runner",
         "Verdict": "stats", "decide": "stats", "challenge": "challenge"}

__all__ = ["Answer", "Context", "Contender", "Control", "Fit", "Gap", "Knob", "Metric", "Probe", "Profile", "Ratio",
           "Reference", "RunResult", "Task", "Threshold", "UsageError", "Verdict", "all_probes", "decide",
           "get", "run", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'deeplimits' has no attribute {name!r}")
