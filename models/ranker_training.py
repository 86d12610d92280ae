"""Training the sequence ranker: next-item objective with sampled negatives.

Items are their frozen text embeddings; the collaborative side features are computed
from the training sequences exactly as the worker computes them online
(``services/recommender/state.py``): recency-weighted co-visitation over the previous
clicks, and popularity. Offline there is no clock, so "trending" is popularity, and
segment affinity is zero until segments feed it. A fraction of candidates have their
side features zeroed during training, as a brand-new item has, so the model learns to
rank from text when nothing else is known.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from scipy import sparse
from torch import nn

from models.ranker import RankerConfig, SequenceRanker

COVIS_WINDOW = 5  # pairs recorded per click: the same window as the worker's ItemStats
COVIS_READ = 10  # history items whose neighbours are summed, as ItemStats.neighbours


@dataclass
class SideFeatures:
    """Collaborative statistics from the training sequences, over dense item ids."""

    popularity: np.ndarray  # [n_items] counts
    covis: sparse.csr_matrix  # [n_items, n_items] recency-weighted co-visits
    _dense: np.ndarray | None = None  # the same as a dense array, for small catalogs

    def __post_init__(self) -> None:
        # Up to ~20k items a dense matrix (≤ 1.6 GB at the limit, 11 MB for ml-100k)
        # turns the per-batch gather into one vectorised take instead of sparse slicing.
        if self.covis.shape[0] <= 20_000:
            self._dense = self.covis.toarray()

    @classmethod
    def from_sequences(cls, sequences: Sequence[np.ndarray], n_items: int) -> SideFeatures:
        pop = np.zeros(n_items, np.float32)
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        for seq in sequences:
            for t, item in enumerate(seq):
                pop[item] += 1
                for pos in range(min(COVIS_WINDOW, t)):
                    other = int(seq[t - 1 - pos])
                    if other == item:
                        continue
                    w = 1.0 / (1 + pos)
                    rows += [int(item), other]
                    cols += [other, int(item)]
                    vals += [w, w]
        covis = sparse.csr_matrix((vals, (rows, cols)), shape=(n_items, n_items), dtype=np.float32)
        covis.sum_duplicates()
        return cls(popularity=pop, covis=covis)

    def for_histories(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """[len(histories), n_items, 4] side features of every item for each history."""
        n_items = self.popularity.shape[0]
        out = np.zeros((len(histories), n_items, 4), np.float32)
        pop = np.log1p(self.popularity)
        out[:, :, 1] = pop
        out[:, :, 2] = pop  # offline stand-in for trending (no clock); see module docstring
        recent = np.zeros((len(histories), COVIS_READ), np.int64)
        weights = np.zeros((len(histories), COVIS_READ), np.float32)
        for i, hist in enumerate(histories):
            r = hist[::-1][:COVIS_READ]
            recent[i, : len(r)] = r
            weights[i, : len(r)] = 1.0 / (1.0 + np.arange(len(r), dtype=np.float32))
        if self._dense is not None:
            covis = np.einsum("br,brn->bn", weights, self._dense[recent])
        else:
            covis = np.stack(
                [
                    np.asarray(self.covis[recent[i]].T @ weights[i]).ravel()
                    for i in range(len(recent))
                ]
            )
        out[:, :, 0] = np.log1p(covis)
        return out


def global_ranks(timestamps: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each click's position in one time-ordered stream of every user's clicks.

    Ties in time keep users' own order and are broken by user, so a click never ranks
    before an earlier click of the same user.
    """
    users = np.concatenate([np.full(len(t), u, np.int64) for u, t in enumerate(timestamps)])
    positions = np.concatenate([np.arange(len(t)) for t in timestamps])
    times = np.concatenate([np.asarray(t, np.float64) for t in timestamps])
    order = np.lexsort((positions, users, times))
    ranks = np.empty(len(order), np.int64)
    ranks[order] = np.arange(len(order))
    return np.split(ranks, np.cumsum([len(t) for t in timestamps])[:-1])


class SideTimeline:
    """Side features as the worker had them just before a click: point in time.

    :class:`SideFeatures` counts over whole sequences, so a training example's target
    already carries its own co-visits with the history and its own click in popularity:
    the model learns "co-visited at all means next", which live statistics (built only from
    earlier clicks) never say. Here every increment keeps its time (global click rank), and
    a query at time ``tau`` sums only those before it, as ``ItemStats`` had them.

    Increments are sorted by (pair, time) with a running sum, so a query is two
    ``searchsorted`` calls, vectorised over a whole batch.
    """

    def __init__(self, sequences: Sequence[np.ndarray], ranks: Sequence[np.ndarray], n_items: int):
        self.n_items = n_items
        self.n_events = int(sum(len(s) for s in sequences)) + 1
        keys: list[np.ndarray] = []
        times: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        for seq, rank in zip(sequences, ranks, strict=True):
            seq = np.asarray(seq, np.int64)
            for pos in range(min(COVIS_WINDOW, len(seq) - 1)):
                item, other, at = seq[pos + 1 :], seq[: len(seq) - pos - 1], rank[pos + 1 :]
                keep = item != other
                item, other, at = item[keep], other[keep], at[keep]
                w = np.full(len(item), 1.0 / (1 + pos))
                keys += [item * n_items + other, other * n_items + item]
                times += [at, at]
                vals += [w, w]
        self._covis = self._cumulative(keys, times, vals)
        all_items = np.concatenate([np.asarray(s, np.int64) for s in sequences])
        all_ranks = np.concatenate(list(ranks))
        self._pop = self._cumulative([all_items], [all_ranks], [np.ones(len(all_items))])

    def _cumulative(
        self, keys: list[np.ndarray], times: list[np.ndarray], vals: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        if not keys:
            return np.zeros(0, np.int64), np.zeros(1)
        composite = np.concatenate(keys) * self.n_events + np.concatenate(times)
        order = np.argsort(composite, kind="stable")
        summed = np.concatenate([[0.0], np.cumsum(np.concatenate(vals)[order])])
        return composite[order], summed

    def _before(
        self, table: tuple[np.ndarray, np.ndarray], keys: np.ndarray, tau: np.ndarray
    ) -> np.ndarray:
        composite, summed = table
        base = keys * self.n_events
        lo = np.searchsorted(composite, base, side="left")
        hi = np.searchsorted(composite, base + tau, side="left")
        return summed[hi] - summed[lo]

    def features(
        self, histories: Sequence[np.ndarray], taus: np.ndarray, candidates: np.ndarray
    ) -> np.ndarray:
        """[B, C, 4] side features of ``candidates`` [B, C] for each history at its time."""
        b, c = candidates.shape
        taus = np.asarray(taus, np.int64)
        recent = np.zeros((b, COVIS_READ), np.int64)
        weights = np.zeros((b, COVIS_READ), np.float64)
        for i, hist in enumerate(histories):
            r = np.asarray(hist, np.int64)[::-1][:COVIS_READ]
            recent[i, : len(r)] = r
            weights[i, : len(r)] = 1.0 / (1.0 + np.arange(len(r)))
        keys = recent[:, :, None] * self.n_items + candidates[:, None, :]  # [B, R, C]
        tau3 = np.broadcast_to(taus[:, None, None], keys.shape)
        covis = self._before(self._covis, keys.ravel(), tau3.ravel()).reshape(keys.shape)
        covis = np.einsum("br,brc->bc", weights, covis)
        pop = self._before(self._pop, candidates.ravel(), np.repeat(taus, c)).reshape(b, c)
        out = np.zeros((b, c, 4), np.float32)
        out[:, :, 0] = np.log1p(covis)
        out[:, :, 1] = np.log1p(pop)
        out[:, :, 2] = out[:, :, 1]  # no clock offline: trending is popularity (model_side)
        return out


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 256
    negatives: int = 127
    lr: float = 1e-3
    weight_decay: float = 0.01
    patience: int = 3
    side_dropout: float = 0.15
    # Share of negatives drawn ∝ popularity^0.75 instead of uniformly. Full ranking pits
    # every target against the popular items; uniform negatives are mostly obscure ones,
    # so a model trained only on them learns too low a prior for an item without stats
    # (a brand-new item) and never ranks one.
    popular_negatives: float = 0.5
    seed: int = 0
    progress: bool = True
    threads: int | None = None


@dataclass
class TrainResult:
    best_epoch: int
    best_valid: float
    history: list[dict[str, float]] = field(default_factory=list)


def _histories_tensor(
    histories: Sequence[np.ndarray], embeddings: torch.Tensor, max_history: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Most-recent-first padded history embeddings and mask."""
    b = len(histories)
    idx = torch.zeros(b, max_history, dtype=torch.long)
    mask = torch.zeros(b, max_history)
    for i, hist in enumerate(histories):
        recent = torch.from_numpy(hist[::-1][:max_history].astype(np.int64))
        idx[i, : len(recent)] = recent
        mask[i, : len(recent)] = 1.0
    return embeddings[idx] * mask[..., None], mask


class RankerRecommender:
    """The sequence ranker behind the offline protocol: fit on sequences, score all items."""

    def __init__(
        self,
        item_embeddings: np.ndarray,
        cfg: RankerConfig | None = None,
        train_cfg: TrainConfig | None = None,
    ) -> None:
        cfg = cfg or RankerConfig()
        train_cfg = train_cfg or TrainConfig()
        self.embeddings = torch.from_numpy(np.ascontiguousarray(item_embeddings, np.float32))
        self.n_items = item_embeddings.shape[0]
        self.cfg, self.train_cfg = cfg, train_cfg
        self.model = SequenceRanker(cfg)
        self.side: SideFeatures | None = None
        # When set, training examples (and validation cases with a time) read their side
        # features as of their own time instead of from whole sequences.
        self.timeline: SideTimeline | None = None

    # -- training -------------------------------------------------------------------------

    def fit(
        self,
        sequences: Sequence[np.ndarray],
        valid: Sequence[tuple[np.ndarray, int]] = (),
        evaluate: Callable[[RankerRecommender, Sequence[tuple[np.ndarray, int]]], float]
        | None = None,
        ranks: Sequence[np.ndarray] | None = None,
        timeline: SideTimeline | None = None,
    ) -> TrainResult:
        """Train on every next-item step of ``sequences``; early-stop on ``valid`` (NDCG@10).

        With ``timeline`` and ``ranks`` (each click's global time rank, parallel to
        ``sequences``), every step's side features are those known just before its target
        (point in time); ``valid`` cases may then carry their target's rank third.
        """
        tc = self.train_cfg
        random.seed(tc.seed)
        np.random.seed(tc.seed)
        torch.manual_seed(tc.seed)
        if tc.threads:
            torch.set_num_threads(tc.threads)
        self.side = SideFeatures.from_sequences(sequences, self.n_items)
        self.timeline = timeline
        if timeline is not None and ranks is None:
            raise ValueError("a timeline needs the clicks' ranks")
        examples = [
            (seq[:t], int(seq[t]), int(ranks[u][t]) if ranks is not None else -1)
            for u, seq in enumerate(sequences)
            for t in range(1, len(seq))
        ]
        opt = torch.optim.AdamW(self.model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        loss_fn = nn.CrossEntropyLoss()
        score = evaluate or ndcg_at_10
        result = TrainResult(best_epoch=-1, best_valid=-math.inf)
        best_state: dict[str, torch.Tensor] | None = None
        rng = np.random.default_rng(tc.seed)
        for epoch in range(tc.epochs):
            self.model.train()
            order = rng.permutation(len(examples))
            total, steps = 0.0, 0
            batches = range(0, len(order), tc.batch_size)
            if tc.progress:
                from tqdm import tqdm

                batches = tqdm(batches, desc=f"epoch {epoch + 1}", leave=False, unit="batch")
            for start in batches:
                chosen = [examples[i] for i in order[start : start + tc.batch_size]]
                loss = self._step(chosen, rng, loss_fn)
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                opt.step()
                total += loss.detach().item()
                steps += 1
            valid_score = score(self, valid) if valid else -total / max(steps, 1)
            result.history.append(
                {"epoch": epoch + 1, "loss": total / max(steps, 1), "valid": valid_score}
            )
            if valid_score > result.best_valid:
                result.best_epoch, result.best_valid = epoch + 1, valid_score
                best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            elif epoch + 1 - result.best_epoch >= tc.patience:
                break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()
        return result

    def _step(
        self,
        chosen: list[tuple[np.ndarray, int, int]],
        rng: np.random.Generator,
        loss_fn: nn.Module,
    ) -> torch.Tensor:
        assert self.side is not None
        histories = [h for h, _, _ in chosen]
        targets = np.array([t for _, t, _ in chosen])
        negs = self._negatives(rng, len(chosen))
        cand_ids = np.concatenate([targets[:, None], negs], axis=1)
        hist, mask = _histories_tensor(histories, self.embeddings, self.cfg.max_history)
        if self.timeline is not None:
            taus = np.array([tau for _, _, tau in chosen])
            side = self.timeline.features(histories, taus, cand_ids)
        else:
            all_side = self.side.for_histories(histories)  # [B, n_items, 4]
            side = np.take_along_axis(all_side, cand_ids[..., None], axis=1)
        drop = rng.random(side.shape[:2]) < self.train_cfg.side_dropout
        side[drop] = 0.0
        logits = self.model(
            hist, mask, self.embeddings[torch.from_numpy(cand_ids)], torch.from_numpy(side)
        )
        # A sampled negative that equals the target is not a negative.
        logits[:, 1:] = logits[:, 1:].masked_fill(torch.from_numpy(negs == targets[:, None]), -1e4)
        return loss_fn(logits, torch.zeros(len(chosen), dtype=torch.long))

    def _negatives(self, rng: np.random.Generator, n: int) -> np.ndarray:
        assert self.side is not None
        k = self.train_cfg.negatives
        n_pop = round(k * self.train_cfg.popular_negatives)
        uniform = rng.integers(0, self.n_items, size=(n, k - n_pop))
        if n_pop == 0:
            return uniform
        weights = self.side.popularity.astype(np.float64) ** 0.75
        if weights.sum() == 0:
            return rng.integers(0, self.n_items, size=(n, k))
        popular = rng.choice(self.n_items, size=(n, n_pop), p=weights / weights.sum())
        return np.concatenate([uniform, popular], axis=1)

    # -- scoring --------------------------------------------------------------------------

    @torch.no_grad()
    def score(
        self, histories: Sequence[np.ndarray], taus: Sequence[int] | None = None
    ) -> np.ndarray:
        """[len(histories), n_items] scores of every item after each history.

        With ``taus`` (and a timeline) the side features are those at each history's time.
        """
        assert self.side is not None, "fit() or load() first"
        self.model.eval()
        out = np.zeros((len(histories), self.n_items), np.float32)
        items = self.embeddings[None]
        for start in range(0, len(histories), 128):
            chunk = histories[start : start + 128]
            hist, mask = _histories_tensor(chunk, self.embeddings, self.cfg.max_history)
            user = self.model.user_vector(hist, mask)
            if taus is not None and self.timeline is not None:
                at = np.asarray(taus[start : start + 128], np.int64)
                every = np.broadcast_to(np.arange(self.n_items), (len(chunk), self.n_items))
                side = torch.from_numpy(self.timeline.features(chunk, at, every))
            else:
                side = torch.from_numpy(self.side.for_histories(chunk))
            scores = self.model.score_items(user, items.expand(len(chunk), -1, -1), side)
            out[start : start + len(chunk)] = scores.numpy()
        return out

    # -- persistence ----------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Weights as safetensors, with the config in the header (no pickle)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"config": json.dumps(self.cfg.to_dict())}
        save_file({k: v.contiguous() for k, v in self.model.state_dict().items()}, str(path), meta)

    @staticmethod
    def load_model(path: Path) -> SequenceRanker:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            cfg = RankerConfig(**json.loads(fh.metadata()["config"]))
        model = SequenceRanker(cfg)
        model.load_state_dict(load_file(str(path)))
        model.eval()
        return model


def ndcg_at_10(rec: RankerRecommender, cases: Sequence[tuple[np.ndarray, int]]) -> float:
    """NDCG@10 with full ranking, the user's history excluded (RecBole's protocol)."""
    if not cases:
        return 0.0
    histories = [case[0] for case in cases]
    # A third element is the target's time rank: side features as of then.
    taus = [case[2] for case in cases] if len(cases[0]) > 2 else None
    scores = rec.score(histories, taus)
    total = 0.0
    for i, (hist, target, *_) in enumerate(cases):
        row = scores[i]
        row[hist] = -np.inf
        rank = int((row > row[target]).sum()) + 1
        if rank <= 10:
            total += 1.0 / math.log2(rank + 1)
    return total / len(cases)
