"""Click batches for RecommenderCore tests: one builder instead of a copy per test file."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from services.contract.events import ClickEvent
from services.recommender.pipeline import Click

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def click(eid: str, user: str, item: str, minute: float = 0) -> Click:
    """A click on ``item`` by ``user`` at ``T0 + minute``, taken by the worker now."""
    ev = ClickEvent(event_id=eid, user_id=user, item_id=item, ts=T0 + timedelta(minutes=minute))
    return Click(ev, partition=0, received_at=time.monotonic())
