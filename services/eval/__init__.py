"""Streaming evaluation: a data set replayed in time order through Kafka and the workers.

``python -m services.eval`` runs it; the pieces are importable for tests and notebooks.
"""

from __future__ import annotations

from services.eval.baselines import CoVisitationKNN, OnlineRecommender, Popularity, replay
from services.eval.biased_mf import BiasedMFBaseline
from services.eval.collector import Answer, Joiner, KafkaCollector
from services.eval.delivery import Delivery, measure, percentile
from services.eval.protocol import Pair, Quality, consecutive_pairs, score
from services.eval.replayer import Replayer, ReplayTimes
from services.eval.settings import EvalSettings
from services.eval.stream import ReplayStream, load_stream, order_clicks

__all__ = [
    "Answer",
    "BiasedMFBaseline",
    "CoVisitationKNN",
    "Delivery",
    "EvalSettings",
    "Joiner",
    "KafkaCollector",
    "OnlineRecommender",
    "Pair",
    "Popularity",
    "Quality",
    "ReplayStream",
    "ReplayTimes",
    "Replayer",
    "consecutive_pairs",
    "load_stream",
    "measure",
    "order_clicks",
    "percentile",
    "replay",
    "score",
]
