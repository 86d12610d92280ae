"""The worker's garbage-collector hooks, against the real collector."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry, generate_latest

from services.recommender.gcpause import GcPauses, freeze, young_threshold


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
    pauses.flush()
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


def test_a_collection_while_the_histogram_is_locked_does_not_deadlock() -> None:
    # Session 15: prometheus_client's multiprocess values build their key (json.dumps,
    # which allocates) holding a module-wide Lock; a collection set off there ran the
    # callback, which observed the histogram and waited on that same lock for ever. Here
    # the histogram's own value lock is held while a collection runs on the same thread.
    import threading

    registry = CollectorRegistry()
    pauses = GcPauses(registry).install()
    lock = pauses._children[0]._sum._lock  # what observe() takes
    done = threading.Event()

    def collect_under_the_lock() -> None:
        with lock:
            gc.collect(0)  # the callback runs here, on this thread, with the lock held
        done.set()

    try:
        before = pauses.count[0]
        threading.Thread(target=collect_under_the_lock, daemon=True).start()
        assert done.wait(10), "the collector's callback blocked on the histogram's lock"
        assert pauses.count[0] > before
        assert pauses.flush() >= 1, "observed when flushed, outside the callback"
    finally:
        pauses.uninstall()


def test_the_young_threshold_changes_only_the_youngest_generation() -> None:
    before = gc.get_threshold()
    try:
        assert young_threshold(50_000) == (50_000, *before[1:])
        assert gc.get_threshold() == (50_000, *before[1:])
        assert GcPauses().to_json()["thresholds"] == [50_000, *before[1:]]
    finally:
        gc.set_threshold(*before)
