"""Create StreamRec's topics up front with the configured partition count.

Brokers that auto-create topics (tansu does, with 4 partitions) would otherwise
race the first producer, and Faust refuses co-partitioned topics whose partition
counts differ (PartitionsMismatch). The shared-state feeds are the exception: one
partition each, whatever the configured count, so every worker reads them in one order.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from services.contract.events import ALL_TOPICS, FEED_TOPICS, ITEM_EMBEDDINGS
from services.kafka.settings import KafkaSettings


class TopicSetupError(RuntimeError):
    """Topics could not be created or have the wrong shape."""


# Topics whose partition count is fixed by what they mean, not by the configured count.
FIXED_PARTITIONS = dict.fromkeys(FEED_TOPICS, 1)
# item-embeddings is read from the start by every worker; compaction keeps it one record per
# item (brokers that ignore it, like tansu, keep every record; readers keep the last).
TOPIC_CONFIG = {ITEM_EMBEDDINGS: {"cleanup.policy": "compact"}}


def ensure_topics(
    settings: KafkaSettings,
    partitions: int,
    topics: Iterable[str] = ALL_TOPICS,
    replication: int = 1,
    timeout: float = 30.0,
) -> dict[str, int]:
    """Create missing topics; return each topic's partition count.

    An existing topic with a different partition count is an error: silently
    using it would break key co-partitioning between ``clicks`` and the tables
    (or, for a feed topic, its single order).
    """
    admin = AdminClient(settings.confluent_config())
    wanted = list(topics)
    deadline = time.monotonic() + timeout
    while True:
        try:
            existing = admin.list_topics(timeout=5).topics
            break
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise TopicSetupError(
                    f"broker at {settings.bootstrap} did not answer: {exc}; is it running?"
                ) from exc
            time.sleep(0.5)
    missing = [t for t in wanted if t not in existing]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    t,
                    num_partitions=FIXED_PARTITIONS.get(t, partitions),
                    replication_factor=replication,
                    config=TOPIC_CONFIG.get(t, {}),
                )
                for t in missing
            ]
        )
        for topic, fut in futures.items():
            try:
                fut.result(timeout=timeout)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TopicSetupError(f"could not create topic {topic}: {exc}") from exc
    counts: dict[str, int] = {}
    while True:
        md = admin.list_topics(timeout=5).topics
        counts = {t: len(md[t].partitions) for t in wanted if t in md}
        if len(counts) == len(wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    wrong = {t: n for t, n in counts.items() if n != FIXED_PARTITIONS.get(t, partitions)}
    if wrong:
        raise TopicSetupError(
            f"topics exist with other partition counts than {partitions} "
            f"({FIXED_PARTITIONS} for the feeds): {wrong}; "
            "delete them or set STREAMREC_TOPIC_PARTITIONS to match"
        )
    absent = [t for t in wanted if t not in counts]
    if absent:
        raise TopicSetupError(f"topics not visible after creation: {absent}")
    return counts
