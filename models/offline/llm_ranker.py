"""The LLM sequence ranker behind the offline protocol, and the item embeddings it reads."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.offline.data import Interactions
from models.offline.splits import TrainData
from models.ranker import RankerConfig
from models.ranker_training import RankerRecommender, SideFeatures, TrainConfig, TrainResult
from services.contract.events import ItemEvent

CACHE_DIR = Path(__file__).resolve().parents[2] / ".cache" / "embeddings"


def item_embeddings(interactions: Interactions, items: Sequence[ItemEvent]) -> np.ndarray:
    """MiniLM embeddings of the catalog, rows in the interactions' dense item order.

    Cached under ``.cache/embeddings`` by a hash of the texts: encoding ml-100k's 1,682
    titles takes ~10–20 s on two cores, and every benchmark run needs the same vectors.
    """
    from models.text_encoder import item_text

    by_id = {item.item_id: item for item in items}
    texts = [item_text(by_id[i]) if i in by_id else str(i) for i in interactions.item_ids]
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE_DIR / f"minilm-{key}.npy"
    if path.exists():
        return np.load(path)
    from models.text_encoder import TextEncoder

    vectors = TextEncoder().encode(texts, progress=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)
    return vectors


class LLMRanker:
    """:class:`models.ranker.SequenceRanker` as a :class:`SequentialRecommender`.

    ``fit`` holds out each user's last training item as the validation target for early
    stopping (time-ordered per user, never the test item), then recomputes the side
    features on all training interactions for scoring.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        cfg: RankerConfig | None = None,
        train_cfg: TrainConfig | None = None,
    ) -> None:
        self.rec = RankerRecommender(embeddings, cfg, train_cfg)
        self.result: TrainResult | None = None

    def fit(self, data: TrainData) -> None:
        sequences = [np.asarray(s, np.int64) for s in data.sequences]
        train = [s[:-1] if len(s) >= 3 else s for s in sequences]
        valid = [(s[:-1], int(s[-1])) for s in sequences if len(s) >= 3]
        self.result = self.rec.fit(train, valid)
        self.rec.side = SideFeatures.from_sequences(sequences, self.rec.n_items)

    def score(self, histories: list[np.ndarray]) -> np.ndarray:
        return self.rec.score(histories)
