"""``python -m services.recommender worker``: run one recommender worker."""

from __future__ import annotations

import argparse
import logging
import sys

from services.recommender.settings import WorkerSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.recommender")
    parser.add_argument("command", choices=["worker"])
    parser.add_argument(
        "--no-feast", action="store_true", help="do not write online features (for debugging)"
    )
    args = parser.parse_args(argv)
    settings = WorkerSettings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    from services.recommender.app import create_app
    from services.recommender.encoder import TritonItemEncoder
    from services.recommender.scorer import FusedScorer, Scorer, TritonScorer
    from services.recommender.shadow import ShadowLane, TritonShadowProbe, shadow_model

    features = None
    if not args.no_feast:
        from services.features.settings import FeatureSettings
        from services.features.store import FeastFeatureStore

        features = FeastFeatureStore(FeatureSettings())

    def served(model: str) -> Scorer:
        scorer: Scorer = TritonScorer(settings.triton_url, model, settings.scorer_timeout_s)
        if settings.collaborative_weight > 0:
            scorer = FusedScorer(scorer, settings.collaborative_weight)
        return scorer

    scorer = served(settings.scorer_model)
    # The challenger in shadow is ranked exactly as the served model is (same fusion).
    shadow_name = shadow_model(settings.scorer_model)
    shadow = ShadowLane(
        served(shadow_name),
        TritonShadowProbe(settings.triton_url, shadow_name),
        settings.shadow_share,
    )
    encoder = TritonItemEncoder(
        settings.triton_url, settings.encoder_model, settings.encoder_timeout_s
    )
    if settings.gc_freeze:
        from services.recommender.gcpause import freeze

        # Modules and clients are loaded: out of every full collection's walk (gcpause.py).
        # Before the app, whose pause histogram would count this one-off collection.
        freeze("startup")
    app = create_app(settings, scorer=scorer, features=features, encoder=encoder, shadow=shadow)
    # Faust parses its own command line; hand it the worker command only.
    sys.argv = [sys.argv[0], "worker", "--loglevel", settings.log_level]
    app.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
