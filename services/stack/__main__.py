"""``python -m services.stack up`` runs the supervisor in the foreground;
``python -m services.stack create-topics`` creates the contract's topics (compose init).
"""

from __future__ import annotations

import argparse
import logging
import sys

from services.stack.settings import StackSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.stack")
    parser.add_argument("command", choices=["up", "create-topics"])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "up":
        from services.stack.control import run_foreground

        return run_foreground(StackSettings())
    from services.kafka.admin import ensure_topics
    from services.kafka.settings import KafkaSettings

    counts = ensure_topics(KafkaSettings(), StackSettings().topic_partitions)
    print(f"topics ready: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
