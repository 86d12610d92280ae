"""The Faust app: agents for ``clicks`` and ``items``, the user table, a health page.

Agents only decode, hand micro-batches to :class:`RecommenderCore` and publish;
everything they send is delivered before the batch is acknowledged, so an
offset is committed only after its recommendation or dead-letter record exists
(at-least-once, made idempotent by event_id).

Item statistics, segments, the catalog and embeddings are shared by every worker of the
group: the agents publish their changes to the ``item-activity`` and ``item-embeddings``
feeds, and each worker applies both feeds, its own records included, as it reads them
back (``feed.py``). /healthz is ready once the worker holds ``clicks`` partitions and has
applied the feeds as they were when it started.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import asdict
from typing import Any

import faust
from mode import CrashingSupervisor

from services.contract import codec
from services.contract.events import (
    CLICKS,
    CLICKS_DLQ,
    ITEMS,
    ITEMS_DLQ,
    RECOMMENDATIONS,
)
from services.features.store import OnlineFeatureStore
from services.kafka.async_producer import AsyncProducer
from services.kafka.io import first_offset_from
from services.recommender.ackgate import AckGate
from services.recommender.catalog import Catalog, CatalogUpdater
from services.recommender.consumer_report import consumer_report
from services.recommender.continuity import OffsetContinuity
from services.recommender.embeddings import EmbeddingIndex
from services.recommender.encoder import ItemEncoder
from services.recommender.feed import FeedSharedState
from services.recommender.feed_reader import FeedReader
from services.recommender.gcpause import GcPauses
from services.recommender.gcpause import freeze as gc_freeze
from services.recommender.gcpause import young_threshold as gc_young_threshold
from services.recommender.memory import MemoryReport
from services.recommender.metrics import (
    CONTENT_TYPE,
    ConsumerLag,
    FaustOffsets,
    WorkerExporter,
    WorkerGauges,
    WorkerMetrics,
)
from services.recommender.pipeline import Click, RankingConfig, RecommenderCore
from services.recommender.recovery import Recovery, TableManager
from services.recommender.scorer import CircuitBreaker, LinearScorer, Scorer
from services.recommender.segments import SegmentConfig, UserSegmenter
from services.recommender.settings import WorkerSettings
from services.recommender.shadow import ShadowLane
from services.recommender.shared import SharedStateApplier
from services.recommender.state import InMemoryUserStateStore, ItemStats, UserState
from services.recommender.threads import limit_native_threads, pool_sizes
from services.recommender.timing import StageTimes
from services.recommender.transport import App as StreamRecFaustApp

log = logging.getLogger(__name__)


class FaustUserStateStore:
    """User state in a changelogged Faust table, written to the click's own partition.

    Writing the changelog explicitly (rather than ``table[key] = value``) keeps the
    partition right inside ``take_events`` batches, where Faust's "current event"
    is the last one buffered, not the one being applied.
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, user_id: str) -> UserState:
        try:
            return UserState.from_json(self.table.data.get(user_id))
        except ValueError as exc:
            # Only workers write the changelog, so this is a bug or a hand-edited topic.
            # Raising would fail every batch holding this user's clicks, after every
            # restart too (the record is recovered again): start the user afresh instead.
            log.error("user %r: saved state unreadable, starting afresh: %s", user_id, exc)
            return UserState()

    def put(self, user_id: str, state: UserState, partition: int) -> None:
        value = state.to_json()
        self.table.data[user_id] = value
        self.table.send_changelog(partition, user_id, value)


def create_app(
    settings: WorkerSettings,
    scorer: Scorer | None = None,
    features: OnlineFeatureStore | None = None,
    encoder: ItemEncoder | None = None,
    shadow: ShadowLane | None = None,
) -> faust.App:
    """Build the worker app; the scorer, feature store and item encoder are injected
    (Triton and Feast in production; without an encoder items are ranked by
    collaborative features only)."""
    kafka = settings.kafka
    app = StreamRecFaustApp(
        settings.app_id,
        broker=kafka.faust_broker_url(),
        broker_credentials=kafka.faust_credentials(),
        store="memory://",
        datadir=str(settings.worker_data_dir),
        topic_partitions=settings.topic_partitions,
        # tansu takes ~23 s for a first group join with the default 45 s session.
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest",
        web_host=settings.worker_web_host,
        web_port=settings.worker_web_port,
        web_bind=settings.worker_web_host,
        web_in_thread=False,
        producer_acks=-1,
        # Reads a changelog that a memory-storage broker's restart replaced again from its
        # start, instead of stopping the worker (recovery.py).
        TableManager=TableManager,
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    app.stop_timeout_s = settings.stop_timeout_s
    app.kafka_settings = kafka
    # Only batches the agents finished are committed, whatever else Faust acks (ackgate.py).
    gate = app.ack_gate = AckGate([CLICKS, ITEMS])

    # Raw bytes both ways: our codec validates and serialises, so a bad message
    # reaches the agent (and the DLQ) instead of failing inside Faust's decoder.
    def raw_topic(name: str) -> Any:
        return app.topic(name, key_serializer="raw", value_serializer="raw")

    clicks_topic, items_topic = raw_topic(CLICKS), raw_topic(ITEMS)
    dlq = {CLICKS: CLICKS_DLQ, ITEMS: ITEMS_DLQ}
    # Everything the agents write, except the table changelog, goes through librdkafka
    # (services/kafka/async_producer.py: Faust's send path cost ~0.3 ms per message).
    out = AsyncProducer(kafka)
    users = app.Table("users", partitions=settings.topic_partitions)

    metrics = WorkerMetrics()
    stage_times = StageTimes()
    catalog = Catalog()
    embeddings = EmbeddingIndex()
    stats = ItemStats()
    segmenter = UserSegmenter(SegmentConfig(n_segments=settings.segments))
    feed = FeedReader(kafka)
    shared = FeedSharedState(
        SharedStateApplier(stats, catalog, embeddings, segmenter),
        feed,
        out,
    )
    breaker = CircuitBreaker(
        scorer or LinearScorer(), LinearScorer(), cooldown_s=settings.breaker_cooldown_s
    )
    core = RecommenderCore(
        users=FaustUserStateStore(users),
        stats=stats,
        catalog=catalog,
        scorer=breaker,
        features=features,
        config=RankingConfig(
            top_k=settings.top_k,
            max_candidates=settings.max_candidates,
            recent_items=settings.recent_items,
            seen_limit=settings.seen_limit,
            diversity=settings.diversity,
            text_embeddings=settings.text_embeddings,
            scoring_chunk=settings.scoring_chunk or None,
        ),
        embeddings=embeddings,
        segments=segmenter,
        shared=shared,
        shadow=shadow,
        defer_state=True,
    )
    # One outage record for both agents' writes: /healthz shows the store as one thing.
    updater = CatalogUpdater(shared, encoder, features, outage=core.store_outage)

    def gauges() -> WorkerGauges:
        return WorkerGauges(
            catalog_items=len(catalog),
            embedded_items=len(embeddings),
            items_pending_embedding=len(updater.pending),
            users_in_memory=len(users.data),
            scorer_breaker_open=breaker.is_open,
            feed_lag=feed.lag,
            shadow_version=shadow.version if shadow is not None else None,
            shadow_scored_clicks=shadow.scored_clicks if shadow is not None else 0,
            shadow_failures=shadow.failures if shadow is not None else 0,
        )

    exporter = WorkerExporter(metrics, gauges, ConsumerLag(FaustOffsets(app)))
    gc_pauses = GcPauses(exporter.registry).install()
    # Here, with every module the worker runs loaded: a pool loaded after the limit would
    # keep its own thread count (threads.py).
    native_threads = (
        limit_native_threads(settings.native_threads) if settings.native_threads else pool_sizes()
    )
    if settings.gc_young_threshold:
        gc_young_threshold(settings.gc_young_threshold)
    app.streamrec_core = core  # type: ignore[attr-defined]  # for tests and the health page
    app.streamrec_metrics = metrics  # type: ignore[attr-defined]
    app.streamrec_stage_times = stage_times  # type: ignore[attr-defined]
    app.streamrec_exporter = exporter  # type: ignore[attr-defined]
    within = settings.batch_ms / 1000.0

    async def dead_letter(event: Any, error: str) -> Awaitable[Any]:
        msg = event.message
        record = codec.dead_letter(
            source_topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            error=error,
            payload=event.value,
            key=event.key,
        )
        metrics.dead_letters += 1
        exporter.dead_letter(msg.topic)
        log.warning("dead-lettered %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, error)
        return await out.send(dlq[msg.topic], event.key, codec.encode(record))

    reject_unknown = settings.unknown_items == "dead-letter"

    def _committed(tp: Any) -> int | None:
        # Where a partition's run must start (continuity.py); Faust's own consumer, in
        # tests that build the app without ours, is not checked.
        known = getattr(app.consumer, "committed_offset", None)
        return known(tp) if known is not None else None

    async def _first_held(topic: str, partition: int, offset: int) -> int | None:
        return await asyncio.get_running_loop().run_in_executor(
            None, first_offset_from, kafka, topic, partition, offset
        )

    continuity = OffsetContinuity(start=_committed)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _forget_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        # Sent as on_partitions_revoked.send(revoked): (app, revoked, signal=...).
        continuity.forget(args[0] if args else kwargs.get("revoked", ()))

    @app.agent(clicks_topic, supervisor_strategy=CrashingSupervisor)
    # `stream` is a faust Stream; its StreamT protocol does not declare take_events.
    async def process_clicks(stream: Any) -> AsyncIterator[None]:
        waited = False
        async for events in stream.take_events(settings.batch_max, within=within):
            if not waited:
                # A (re)started worker ranks its first batch on the whole shared state,
                # not on a half-read feed; past the timeout it goes on and catches up later.
                waited = True
                if not await shared.catch_up(settings.feed_catchup_timeout_s):
                    log.warning("feed not caught up after %.0fs", settings.feed_catchup_timeout_s)
                if settings.gc_freeze:
                    # The recovered and shared state is long-lived: out of the full
                    # collections' walk, which would stall batches for it (gcpause.py).
                    gc_freeze("first batch, shared state read")
            received = time.monotonic()
            # The catalog as far as the feed has gone, for the unknown-item check below.
            sync_started = time.perf_counter()
            shared.sync()
            decode_started = time.perf_counter()
            pending: list[Awaitable[Any]] = []
            batch: list[Click] = []
            # Each click's Kafka timestamp, for the click-to-recommendation histogram.
            kafka_ts: dict[str, float | None] = {}
            # Nothing of a batch that follows skipped messages is handled or acknowledged.
            await continuity.verify_batch(events, _first_held)
            for event in events:
                msg = event.message
                try:
                    click = codec.decode_click(
                        event.value,
                        topic=msg.topic,
                        partition=msg.partition,
                        offset=msg.offset,
                        max_bytes=settings.max_value_bytes,
                    )
                except codec.EventDecodeError as exc:
                    pending.append(await dead_letter(event, exc.reason))
                    continue
                if reject_unknown and click.item_id not in catalog:
                    # Not ranked on a guess: an id the catalog never saw is a typo, a test
                    # id or an item published late; once it is, the DLQ record replays.
                    reason = (
                        f"unknown item_id {click.item_id!r}: not in the catalog (publish it "
                        f"to '{ITEMS}', then `streamrec dlq replay`)"
                    )
                    pending.append(await dead_letter(event, reason))
                    continue
                batch.append(Click(click, msg.partition, received))
                kafka_ts.setdefault(click.event_id, msg.timestamp)
            decoded = time.perf_counter() - decode_started
            result = await core.process(batch)
            timer = result.timer
            # Part of every click's latency, as the other stages are.
            timer.add("feed_apply", decode_started - sync_started)
            timer.add("decode", decoded)
            for rec in result.recommendations:
                pending.append(
                    await out.send(RECOMMENDATIONS, rec.user_id.encode(), codec.encode(rec))
                )
                exporter.answered(kafka_ts.get(rec.event_id))
            pending.extend(result.published)  # this batch's item-activity records
            timer.lap("publish")
            await core.write_features(result)
            timer.lap("feature_write")
            # Delivered before take_events acknowledges the batch: no offset is
            # committed for a click whose answer is not on the broker.
            await asyncio.gather(*pending)
            # Only now the users' state (changelog): a click found in it after a crash
            # had its answer delivered, and is not answered twice.
            core.save_users(result)
            timer.lap("delivery")
            stage_times.record(timer, len(events))
            exporter.batch(timer, len(events), result.recommendations)
            metrics.clicks += len(events)
            metrics.recommendations += len(result.recommendations)
            metrics.duplicates += len(result.duplicates)
            # Per answer: a batch's chunks may have been ranked by different scorers.
            metrics.degraded += sum(rec.degraded for rec in result.recommendations)
            metrics.batches += 1
            gate.handled(events)
            yield None

    @app.agent(items_topic, supervisor_strategy=CrashingSupervisor)
    async def process_items(stream: Any) -> AsyncIterator[None]:
        async for events in stream.take_events(settings.batch_max, within=within):
            pending: list[Awaitable[Any]] = []
            items = []
            # Nothing of a batch that follows skipped messages is handled or acknowledged.
            await continuity.verify_batch(events, _first_held)
            for event in events:
                try:
                    item = codec.decode_item(event.value, max_bytes=settings.max_value_bytes)
                except codec.EventDecodeError as exc:
                    pending.append(await dead_letter(event, exc.reason))
                    continue
                items.append(item)
            # Embedded and shared (item-embeddings delivered) before the batch is
            # acknowledged, so a new item reaches every worker's catalog and index; if the
            # encoder is down they are shared without vectors, wait in `updater.pending`,
            # and the timer below retries them.
            await updater.apply(items)
            metrics.items += len(items)
            await asyncio.gather(*pending)
            gate.handled(events)
            yield None

    @app.timer(interval=settings.encoder_retry_s)
    async def retry_pending_items() -> None:
        if updater.pending:
            await updater.flush()

    if shadow is not None:

        @app.timer(interval=settings.shadow_poll_s)
        async def poll_shadow() -> None:
            await shadow.refresh()

    @app.task
    async def start_feed() -> None:
        feed.start()

    # mode types a handler's `signal` argument by a name mypy cannot resolve.
    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    def stop_feed(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        # The thread is a daemon and commits nothing: a short wait for a clean close only.
        feed.stop(timeout=2.0)
        # Whatever is still queued belongs to batches not yet acknowledged: they will be
        # consumed again, so a short flush is a courtesy, not a guarantee.
        out.close(timeout=2.0)
        gc_pauses.uninstall()

    @app.timer(interval=1.0)
    async def flush_gc_pauses() -> None:
        # Into the histogram, outside the collector's callback (gcpause.py).
        gc_pauses.flush()

    @app.timer(interval=settings.feed_sync_ms / 1000.0)
    async def apply_feed() -> None:
        # Between click batches, so an idle worker keeps up with the others.
        shared.sync()

    def _changelog_resets() -> int:
        recovery = getattr(app.tables, "recovery", None)
        return recovery.resets if isinstance(recovery, Recovery) else 0

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        assignment = app.consumer.assignment() if app.consumer else set()
        # Ready means consuming: the web server starts after table recovery, which can be
        # before this worker holds any `clicks` partition (a rebalance still under way),
        # and with the feeds applied as far as they went when the worker started.
        ready = any(tp.topic == CLICKS for tp in assignment) and shared.caught_up
        return web.json(
            {
                "status": "ok" if ready else "starting",
                "assigned_partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in assignment),
                "scorer_breaker_open": breaker.is_open,
                "shadow": None
                if shadow is None
                else {
                    "version": shadow.version,
                    "share": shadow.share,
                    "scored_clicks": shadow.scored_clicks,
                    "failures": shadow.failures,
                },
                "catalog_items": len(catalog),
                "embedded_items": len(embeddings),
                "items_pending_embedding": len(updater.pending),
                "users_in_memory": len(users.data),
                "feed": shared.status(),
                "changelog_resets": _changelog_resets(),
                "gc": gc_pauses.to_json(),
                "native_threads": native_threads,
                # Acks of messages no agent finished, kept from the commit (ackgate.py).
                "acks_refused": gate.refused,
                "feature_store": core.store_outage.to_json(),
                **asdict(metrics),
            },
            status=200 if ready else 503,
        )

    @app.page("/consumer")
    async def consumer_page(web: Any, request: Any) -> Any:
        """The consumer's per-partition state (services/recommender/consumer_report.py)."""
        return web.json(consumer_report(app))

    if settings.consumer_log_s > 0:

        @app.timer(interval=settings.consumer_log_s)
        async def log_consumer() -> None:
            log.info("consumer: %s", json.dumps(consumer_report(app, gate.topics)))

    @app.page("/metrics")
    async def prometheus_metrics(web: Any, request: Any) -> Any:
        """Prometheus text exposition (services/recommender/metrics.py)."""
        gc_pauses.flush()  # the collections since the last flush (gcpause.py: no lock in GC)
        # As a header: aiohttp refuses a content_type argument that carries a charset.
        return web.bytes(await exporter.scrape(), headers={"Content-Type": CONTENT_TYPE})

    @app.page("/stages")
    async def stages(web: Any, request: Any) -> Any:
        """Per-stage time of the last batches (services/recommender/timing.py); with
        ``?reset=1``, of the batches since the last reset, which it then makes."""
        summary = stage_times.summary()
        if request.query.get("reset") in ("1", "true"):
            stage_times.reset()
        return web.json(summary)

    memory = MemoryReport()
    memory.start(settings.tracemalloc_frames)

    if settings.malloc_trim_s > 0:

        @app.timer(interval=settings.malloc_trim_s)
        async def trim_heap() -> None:
            # In a thread: a trim walks the heaps (tens of ms on a large one).
            await asyncio.get_running_loop().run_in_executor(None, memory.trim)

    @app.page("/memory")
    async def memory_page(web: Any, request: Any) -> Any:
        """Resident size and, with tracing on, the heap's growth by site (memory.py)."""
        reset = request.query.get("reset") in ("1", "true")
        return web.json(memory.report(reset=reset))

    @app.page("/shared")
    async def shared_state(web: Any, request: Any) -> Any:
        """Hashes of the shared state: equal on every worker that applied the same feed."""
        return web.json({"feed": shared.status(), "digest": shared.applier.digest()})

    return app


def in_memory_core(
    scorer: Scorer | None = None,
    features: OnlineFeatureStore | None = None,
    embeddings: EmbeddingIndex | None = None,
    config: RankingConfig | None = None,
) -> RecommenderCore:
    """A core with in-memory state, for unit tests and offline replays."""
    return RecommenderCore(
        users=InMemoryUserStateStore(),
        stats=ItemStats(),
        catalog=Catalog(),
        scorer=CircuitBreaker(scorer or LinearScorer(), LinearScorer()),
        features=features,
        config=config or RankingConfig(),
        embeddings=embeddings,
        segments=UserSegmenter(),
    )
