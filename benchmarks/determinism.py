"""Same scenario, same seed, same plan: two solves compared byte for byte.

Usage::

    python benchmarks/determinism.py [SCENARIO] [--time-limit 60] [--together]

Runs ``allocator solve`` twice on SCENARIO (default: the embedded default scenario) into
separate model folders, one after the other, or with ``--together`` at the same time (each then
gets about half of the machine, so timing differs as much as it can between the two), and
compares the sha256 of their ``assignment.csv``. Exit code 0 when they are identical.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="scenarios/us_counties.yaml")
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--together", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folders = [Path(tmp) / f"models{k}" for k in (1, 2)]
        commands = [[sys.executable, "-m", "allocator.cli", "solve", args.scenario, "--quiet",
                     "--time-limit", str(args.time_limit), "--seed", str(args.seed),
                     "--models-dir", str(folder)] for folder in folders]
        if args.together:
            running = [subprocess.Popen(c, stdout=subprocess.DEVNULL) for c in commands]
            codes = [p.wait() for p in running]
        else:
            codes = [subprocess.run(c, stdout=subprocess.DEVNULL).returncode for c in commands]
        if any(codes):
            print(f"a solve failed: exit codes {codes}")
            return 1
        digests = []
        for folder in folders:
            (assignment,) = folder.glob("*/*/assignment.csv")
            digests.append(hashlib.sha256(assignment.read_bytes()).hexdigest())
            print(f"{assignment.relative_to(tmp)}  sha256 {digests[-1]}")
    same = digests[0] == digests[1]
    print("identical" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
