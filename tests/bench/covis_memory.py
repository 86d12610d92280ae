"""Memory of the co-visitation state when every click's ids are fresh string objects.

    python -m tests.bench.covis_memory [--clicks 200000]

What a worker applying decoded records sees: each record brings its own copy of every
id. Prints the pairs held and the Python heap they take (tracemalloc). Session 10: 462,000
pairs, 39.1 MiB before ids were interned, 22.2 MiB after. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import random
import tracemalloc

from services.recommender.state import ItemStats


def fresh(s: str) -> str:
    """A new string object equal to ``s``, as a JSON decode makes."""
    return (s + ".")[:-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clicks", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=1500)
    args = parser.parse_args()
    rng = random.Random(0)
    items = [f"i{n}" for n in range(args.items)]
    tracemalloc.start()
    stats = ItemStats()
    history: dict[int, list[str]] = {}
    for k in range(args.clicks):
        user = rng.randrange(args.users)
        # Half the clicks from a heavy-tailed head, half uniform over the catalog.
        if rng.random() < 0.5:
            item = items[min(int(rng.paretovariate(1.2)) - 1, args.items - 1)]
        else:
            item = items[rng.randrange(args.items)]
        previous = history.setdefault(user, [])
        stats.observe(fresh(item), [fresh(p) for p in previous[:5]], 1e9 + k)
        previous.insert(0, item)
        del previous[5:]
    current, _ = tracemalloc.get_traced_memory()
    pairs = sum(len(row) for row in stats.covis.values())
    print(f"{pairs:,} co-visitation pairs, {current / 2**20:.1f} MiB traced")


if __name__ == "__main__":
    main()
