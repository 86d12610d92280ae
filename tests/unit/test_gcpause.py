"""The worker's garbage-collector hooks, against the real collector."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry, generate_latest

from services.recommender.gcpause import GcPauses, freeze


def test_every_collection_is_timed_by_generation() -> None:
    registry = CollectorRegistry()
    pauses = GcPauses(registry).install()
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        pauses.uninstall()
    assert pauses.count[0] >= 1 and pauses.count[2] >= 1
    assert pauses.max_s[2] > 0
    text = generate_latest(registry).decode()
    assert 'streamrec_gc_pause_seconds_count{generation="2"}' in text
    assert pauses not in gc.callbacks, "uninstall removes the hook"
    gc.collect(2)
    assert pauses.count[2] == pauses.to_json()["collections"][2], "no count after uninstall"


def test_freeze_takes_what_is_alive_out_of_the_collectors_walk() -> None:
    before = gc.get_freeze_count()
    kept = [[i] for i in range(1000)]  # containers: tracked by the collector
    try:
        frozen = freeze("test")
        assert frozen >= before + len(kept)
        assert GcPauses(CollectorRegistry()).to_json()["frozen_objects"] == frozen, (
            "/healthz reports the count freeze() left, without walking the heap again"
        )
        tracked = {id(o) for o in gc.get_objects()}
        assert id(kept[0]) not in tracked, "frozen objects are not in any generation"
    finally:
        gc.unfreeze()
