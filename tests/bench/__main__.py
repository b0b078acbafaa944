"""`make bench`: each benchmark's figure next to its reference, measured in the same run."""

from __future__ import annotations

import os
import sys

from tests.bench import card, delivery, intake


def main() -> int:
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}", flush=True)
    for benchmark in (intake, delivery, card):
        for name, figure, reference in benchmark.run():
            print(f"{name:<45} {figure}\n{'':<45} reference: {reference}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
