"""The worker's ``text_embeddings`` switch: off, ranking no longer depends on the items'
text vectors anywhere (candidates, segments, the ranker's input, MMR, reasons)."""

from __future__ import annotations

import asyncio

import numpy as np

from services.contract.events import ItemEvent
from services.recommender.app import in_memory_core
from services.recommender.embeddings import EmbeddingIndex
from services.recommender.pipeline import RankingConfig
from services.recommender.scorer import FusedScorer, Scored, ScoringBatch
from services.recommender.settings import WorkerSettings
from tests.support.clicks import click

ITEMS = [f"i{n}" for n in range(40)]


class TextAwareScorer:
    """Scores by the cosine of each candidate with the user's newest item, so its order
    follows the embeddings exactly; keeps every request it was sent."""

    version = "scorer:text"

    def __init__(self) -> None:
        self.batches: list[ScoringBatch] = []

    async def score(self, batch: ScoringBatch) -> Scored:
        self.batches.append(batch)
        req = batch.request
        newest = req.items[np.maximum(req.history_idx[:, 0], 0)]
        cands = req.items[req.candidate_idx]
        return Scored(np.einsum("bd,bcd->bc", newest, cands), self.version)


def embeddings(seed: int) -> EmbeddingIndex:
    rng = np.random.default_rng(seed)
    index = EmbeddingIndex()
    for item in ITEMS:
        index.upsert(item, rng.normal(size=index.dim))
    return index


def replay(seed: int, text: bool) -> tuple[list[list[str]], list[list[list[str]]], TextAwareScorer]:
    """The same clicks through a fresh core on embedding index ``seed``: each answer's
    items and reasons, and the scorer that was asked."""
    scorer = TextAwareScorer()
    # Fused with the collaborative score as in the worker, so the order is not text alone.
    core = in_memory_core(
        scorer=FusedScorer(scorer, 2.0),
        embeddings=embeddings(seed),
        config=RankingConfig(text_embeddings=text, max_candidates=20, diversity=0.3),
    )
    for item in ITEMS:
        core.catalog.upsert(ItemEvent(item_id=item, title=f"Film {item}"))
    rng = np.random.default_rng(0)
    answers, reasons = [], []
    for step in range(6):
        batch = [
            click(f"e{step}-{u}", f"u{u}", ITEMS[int(rng.integers(len(ITEMS)))], minute=step)
            for u in range(12)
        ]
        result = asyncio.run(core.process(batch))
        for rec in result.recommendations:
            answers.append([i.item_id for i in rec.items])
            reasons.append([i.reasons for i in rec.items])
            assert (rec.segment is None) is not text
    return answers, reasons, scorer


def test_without_text_embeddings_rankings_do_not_depend_on_the_vectors() -> None:
    first, reasons, scorer = replay(seed=1, text=False)
    second, _, _ = replay(seed=2, text=False)
    assert first == second
    # Nothing text-borne reaches the ranker or the explanations.
    for batch in scorer.batches:
        assert not batch.request.items.any()
        assert not batch.features[..., 3].any()  # segment affinity: no segments
    assert not any("similar description" in r for rs in reasons for item in rs for r in item)


def test_with_text_embeddings_the_same_clicks_rank_differently() -> None:
    first, reasons, scorer = replay(seed=1, text=True)
    second, _, _ = replay(seed=2, text=True)
    assert first != second
    assert any(batch.request.items.any() for batch in scorer.batches)
    assert any("similar description" in r for rs in reasons for item in rs for r in item)


def test_the_worker_setting_defaults_on_and_reads_its_variable(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert WorkerSettings().text_embeddings is True
    monkeypatch.setenv("STREAMREC_TEXT_EMBEDDINGS", "false")
    assert WorkerSettings().text_embeddings is False
