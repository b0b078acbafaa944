"""`make bench`: each benchmark's figure next to its reference, measured in the same run."""

from __future__ import annotations

import os
import sys

from tests.bench import backfill, backlog, card, delivery, intake

BENCHMARKS = {"intake": intake, "delivery": delivery, "card": card, "backfill": backfill, "backlog": backlog}


def main() -> int:
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}", flush=True)
    chosen = sys.argv[1:] or list(BENCHMARKS)  # `python -m tests.bench backfill` runs one
    for benchmark in (BENCHMARKS[name] for name in chosen):
        for name, figure, reference in benchmark.run():
            print(f"{name:<45} {figure}\n{'':<45} reference: {reference}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
