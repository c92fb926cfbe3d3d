"""deeplimits: an executable atlas of where deep learning fails.

    import deeplimits
    res = deeplimits.run(["parity"], profile="quick")
    res.verdicts["parity"].sentence
    res.to_pandas()
"""

from __future__ import annotations

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
from .registry import all_probes, get  # noqa: E402
from .runner import RunResult, run  # noqa: E402
from .stats import Verdict, decide  # noqa: E402

__all__ = ["Answer", "Context", "Contender", "Control", "Fit", "Gap", "Knob", "Metric", "Probe", "Profile", "Ratio",
           "Reference", "RunResult", "Task", "Threshold", "UsageError", "Verdict", "all_probes", "decide",
           "get", "run", "__version__"]
