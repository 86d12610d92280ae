"""Settings of the recommender worker, read once at its entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.kafka.settings import KafkaSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMREC_", frozen=True, extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    app_id: str = Field(default="streamrec", description="consumer group and table prefix")
    topic_partitions: int = Field(default=4, description="partitions of the contract topics")
    triton_url: str = Field(default="127.0.0.1:8001", description="Triton gRPC address")
    scorer_model: str = Field(default="scorer", description="Triton model that ranks")
    scorer_timeout_s: float = Field(
        default=2.0, description="a scorer call slower than this counts as a failure"
    )
    encoder_model: str = Field(default="item_encoder", description="Triton model that embeds items")
    encoder_timeout_s: float = Field(default=10.0, description="longest an encoder call may take")
    encoder_retry_s: float = Field(
        default=2.0, description="retry embedding pending catalog items this often"
    )
    segments: int = Field(default=12, ge=1, description="online user segments (river KMeans)")
    diversity: float = Field(
        default=0.1, ge=0.0, le=1.0, description="MMR weight of diversity (0: score order)"
    )
    # Chosen on the ml-100k replay's validation window (clicks 70-80%, a ranker trained on
    # the first 70%): NDCG@10 0.092 alone, 0.106 at 1, 0.107 at 2, 0.106 at 4.
    collaborative_weight: float = Field(
        default=2.0,
        ge=0.0,
        description="add this times the collaborative score to the ranker's (0: ranker alone)",
    )
    # The language-model item embeddings' switch, for the evaluation's ablation (README,
    # "Streaming evaluation"): off, the worker ranks on IDs and collaborative signals only
    # (RankingConfig.text_embeddings says exactly what that leaves).
    text_embeddings: bool = Field(
        default=True,
        description="rank with the items' text embeddings (false: IDs and collaborative only)",
    )
    # Shadow scoring: while the trainer has a challenger loaded as <scorer_model>-shadow,
    # this share of users is also ranked by it (never published; judged by their next click).
    shadow_share: float = Field(
        default=0.2, ge=0.0, le=1.0, description="share of users a shadow challenger ranks"
    )
    shadow_poll_s: float = Field(
        default=2.0, gt=0, description="how often to ask Triton whether a shadow is loaded"
    )
    breaker_cooldown_s: float = Field(
        default=5.0, description="after a scorer failure, rank without it this long, then retry"
    )
    worker_web_host: str = Field(default="127.0.0.1", description="address of /healthz, /metrics")
    worker_web_port: int = Field(default=6066, description="port of /healthz, /metrics, /stages")
    worker_data_dir: Path = Field(
        default=REPO_ROOT / ".run" / "worker-0", description="Faust's local table data"
    )
    fetch_max_wait_ms: int = Field(
        default=100,
        ge=20,
        description="longest a consumer fetch waits for data (Faust's own default is 1,500)",
    )
    feed_sync_ms: float = Field(
        default=100.0, gt=0, description="apply the shared-state feeds this often when idle"
    )
    feed_catchup_timeout_s: float = Field(
        default=60.0, description="longest the first click batch waits for the feeds"
    )
    batch_max: int = Field(default=256, description="clicks per micro-batch at most")
    batch_ms: float = Field(default=10.0, description="wait at most this long to fill a batch")
    native_threads: int = Field(
        default=1,
        ge=0,
        description="threads of each BLAS and OpenMP pool (and torch's); 0 keeps the "
        "libraries' own choice, whose idle threads spin on the cores tansu and Triton need "
        "(services/recommender/threads.py)",
    )
    gc_freeze: bool = Field(
        default=True,
        description="keep the startup and recovered state out of full garbage collections, "
        "which otherwise stall every click in flight (services/recommender/gcpause.py)",
    )
    gc_young_threshold: int = Field(
        default=50_000,
        ge=0,
        description="net allocations between two young garbage collections; 0 keeps "
        "Python's 700, at which collections took 40% of the per-click time "
        "(services/recommender/gcpause.py)",
    )
    scoring_chunk: int = Field(
        default=128,
        ge=0,
        description="clicks per scorer request: a larger batch is ranked in chunks, the "
        "next chunk's candidates built while the scorer ranks the last; 0 sends one "
        "request per batch",
    )
    top_k: int = Field(default=10, description="items per recommendation")
    max_candidates: int = Field(default=100, description="candidates the scorer ranks per click")
    recent_items: int = Field(default=50, description="recent items kept per user")
    seen_limit: int = Field(default=2000, description="per user, items excluded from results")
    max_value_bytes: int = Field(
        default=64 * 1024, description="larger message values are dead-lettered"
    )
    # Accepting is the default for now: clicks and catalog arrive on separate topics, and a
    # click on an item published a moment earlier can beat its catalog entry to a worker;
    # dead-lettering it would need a grace period first (docs/RELIABILITY.md).
    unknown_items: Literal["dead-letter", "accept"] = Field(
        default="accept",
        description=(
            "a click on an item the catalog has never seen: `dead-letter` it (replay it with "
            "`streamrec dlq replay` once the item is published) or `accept` it (ranked on "
            "collaborative signals alone)"
        ),
    )
    log_level: str = Field(default="info", description="the worker's log level")
    stop_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "a worker whose stop (a signal, or an agent that stopped) has not finished after "
            "this many seconds logs every thread's stack and exits with status 70, so the "
            "stack's supervisor restarts it; unfinished batches were not committed and are "
            "read again"
        ),
    )
    consumer_log_s: float = Field(
        default=0.0,
        ge=0,
        description=(
            "every this many seconds log the Kafka consumer's per-partition state (Faust's "
            "read and committed offsets, aiokafka's fetch position and highwater; 0: never), "
            "to diagnose a partition whose lag does not drain; /consumer shows it on demand"
        ),
    )
    # Off by default: tracing every allocation costs CPU and memory. On, the worker's
    # /memory page lists where its Python heap grew (the soak's diagnosis, RELIABILITY.md).
    # glibc keeps freed pages in the middle of its heaps resident; the soak's workers grew
    # ~20 MiB each that way in 30 minutes (RELIABILITY.md, test 15).
    malloc_trim_s: float = Field(
        default=60.0,
        ge=0,
        description=(
            "every this many seconds hand the pages the C allocator holds free back to the "
            "OS (glibc `malloc_trim`; 0: never); /memory counts what it freed"
        ),
    )
    tracemalloc_frames: int = Field(
        default=0,
        ge=0,
        description="trace Python allocations with this many frames each (0: off) for /memory",
    )
