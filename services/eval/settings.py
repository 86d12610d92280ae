"""Settings of ``python -m services.eval``: read once at the entry point, then passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class EvalSettings(BaseSettings):
    """How one quality replay runs; every field is also ``STREAMREC_EVAL_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="STREAMREC_EVAL_", frozen=True, extra="ignore")

    dataset: Literal["ml-100k", "synthetic"] = Field(
        default="ml-100k", description="what to replay"
    )
    rate: float = Field(default=0.0, ge=0.0, description="clicks per second; 0 = flat out")
    limit: int | None = Field(default=None, ge=1, description="replay only the first N clicks")
    seed: int = Field(default=0, description="for the synthetic data set and the withheld items")
    warmup_fraction: float = Field(
        default=0.8, ge=0.0, lt=1.0, description="share of the clicks that warm the system up"
    )
    k: int = Field(default=10, ge=1, description="list length judged (HR@k, NDCG@k, MRR@k)")
    withhold_fraction: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description=(
            "share of the catalog whose clicks are left out of the warm-up (seeded by seed; "
            "their catalog events are still sent): cold items for the withheld-item HR@k"
        ),
    )
    goal_hr: float = Field(default=0.20, description="HR@k the report calls the goal")
    goal_ndcg: float = Field(default=0.10, description="NDCG@k the report calls the goal")
    out_dir: Path | None = Field(
        default=None, description="where the report goes; default .run/eval/<run id>/"
    )
    bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap; default: the embedded stack's"
    )
    worker_urls: tuple[str, ...] = Field(
        default=(), description="worker /healthz URLs; default: the embedded stack's workers"
    )
    start_stack: bool = Field(default=False, description="bring the stack up and down")
    train_on_warmup: bool = Field(
        default=False,
        description="serve a ranker trained on the warm-up clicks only (needs start_stack)",
    )
    initial_synthetic: bool = Field(
        default=False,
        description="serve a ranker trained on the synthetic data set only (needs start_stack)",
    )
    retrain_after_warmup: bool = Field(
        default=False,
        description=(
            "once the warm-up is answered, have the stack's trainer retrain and wait for its "
            "decision before the judged clicks (needs start_stack)"
        ),
    )
    retrain_timeout_s: float = Field(
        default=3600.0, gt=0, description="longest wait for the retraining's decision"
    )
    ablation: bool = Field(
        default=False,
        description=(
            "replay twice, each on a fresh stack: with and without the items' text "
            "embeddings (STREAMREC_TEXT_EMBEDDINGS); needs start_stack"
        ),
    )
    wait_catalog: bool = Field(default=True, description="wait until the workers have the items")
    catalog_timeout_s: float = Field(
        default=600.0, description="longest wait for the workers to hold the catalog"
    )
    idle_timeout_s: float = Field(
        default=120.0, description="give up waiting after this long without a new answer"
    )
    settle_s: float = Field(
        default=3.0, description="keep reading this long after the last answer (duplicates)"
    )
    progress: bool = Field(default=True, description="progress bars while it runs")

    def report_dir(self, run_id: str) -> Path:
        return self.out_dir if self.out_dir is not None else REPO_ROOT / ".run" / "eval" / run_id
