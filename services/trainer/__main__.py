"""``python -m services.trainer [serve|once]``: the trainer service, or one retraining now."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys

from services.kafka.settings import KafkaSettings
from services.trainer.settings import TrainerSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.trainer", description=__doc__)
    parser.add_argument("mode", nargs="?", choices=["serve", "once"], default="serve")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from services.trainer.service import Trainer, serve_http

    settings, kafka = TrainerSettings(), KafkaSettings()
    trainer = Trainer(settings, kafka)
    if args.mode == "once":
        job = trainer.train_now("requested with `python -m services.trainer once`")
        print(json.dumps(job, default=str, indent=2))
        return 0 if job["state"] == "done" and job.get("decision") != "rejected" else 1

    server = serve_http(trainer, settings.host, settings.port)
    if not trainer.start_monitor():
        logging.getLogger(__name__).warning(
            "the online monitor is not reading recommendations yet (retrying in the background)"
        )

    def stop(*_: object) -> None:
        trainer.stopping.set()
        trainer.requested.set()

    signal.signal(signal.SIGTERM, stop)
    try:
        trainer.loop()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
