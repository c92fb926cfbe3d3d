"""Start-up time of the command line: `deeplimits --help` and `deeplimits list` (median of N runs,
each a fresh interpreter), and what `list` would cost if it imported every probe (torch included).

    python benchmarks/startup.py [--repeats 7]

Prints seconds per command and the ratio import-everything / catalog, measured in this run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(args: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    n = parser.parse_args().repeats
    py = sys.executable
    cases = {
        "python -c pass (interpreter alone)": [py, "-c", "pass"],
        "deeplimits --help": [py, "-m", "deeplimits.cli", "--help"],
        "deeplimits --version": [py, "-m", "deeplimits.cli", "--version"],
        "deeplimits list": [py, "-m", "deeplimits.cli", "list"],
        "import every probe (what list used to do)": [py, "-c", "import deeplimits; deeplimits.all_probes()"],
    }
    results = {name: timed(cmd, n) for name, cmd in cases.items()}
    width = max(map(len, results))
    print(f"median of {n} fresh interpreters each")
    for name, secs in results.items():
        print(f"{name:<{width}}  {secs:6.3f} s")
    ratio = results["import every probe (what list used to do)"] / results["deeplimits list"]
    print(f"list via the catalog is {ratio:.1f}x faster than importing every probe")


if __name__ == "__main__":
    main()
