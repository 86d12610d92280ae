"""The workers' /healthz pages: how the replay knows the catalog is in before clicks go out.

Clicks on items a worker has not embedded yet are still answered, but ranked without
the items' text; sending the catalog first and waiting keeps the warm-up comparable
from run to run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx


class WorkerUnavailableError(RuntimeError):
    """No worker answered its health page; the message says which URLs were tried."""


class CatalogTimeoutError(RuntimeError):
    """The workers did not take the catalog in time."""


class WorkerProbe:
    """Reads every worker's /healthz (the JSON body comes with 200 and 503 alike)."""

    def __init__(self, urls: Sequence[str], timeout_s: float = 5.0) -> None:
        if not urls:
            raise ValueError("need at least one worker /healthz URL")
        self.urls = list(urls)
        self._timeout_s = timeout_s

    def read(self) -> list[dict[str, Any]]:
        pages = []
        for url in self.urls:
            try:
                pages.append(httpx.get(url, timeout=self._timeout_s).json())
            except (httpx.HTTPError, ValueError) as exc:
                raise WorkerUnavailableError(
                    f"worker health page {url} did not answer ({exc}); is the stack up? "
                    "Pass --worker-url for a worker elsewhere, or --no-catalog-wait"
                ) from exc
        return pages

    def items_processed(self) -> int:
        """Catalog events the workers' items agents have taken so far, all workers together."""
        return sum(int(page.get("items", 0)) for page in self.read())


def catalog_ready(pages: Sequence[dict[str, Any]], processed_at_least: int, distinct: int) -> bool:
    """True once the items agents took ``processed_at_least`` catalog events in all and
    every worker knows and has embedded ``distinct`` items with none pending."""
    processed = sum(int(page.get("items", 0)) for page in pages)
    return processed >= processed_at_least and all(
        int(page.get("catalog_items", 0)) >= distinct
        and int(page.get("embedded_items", 0)) >= distinct
        and int(page.get("items_pending_embedding", 0)) == 0
        for page in pages
    )


def wait_for_catalog(
    probe: WorkerProbe,
    processed_at_least: int,
    distinct: int,
    *,
    timeout_s: float,
    poll_s: float = 0.5,
    on_poll: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Poll until :func:`catalog_ready`; returns the last pages read."""
    deadline = time.monotonic() + timeout_s
    while True:
        pages = probe.read()
        if on_poll is not None:
            on_poll(pages)
        if catalog_ready(pages, processed_at_least, distinct):
            return pages
        if time.monotonic() > deadline:
            state = [
                {
                    k: p.get(k)
                    for k in ("catalog_items", "embedded_items", "items_pending_embedding")
                }
                for p in pages
            ]
            raise CatalogTimeoutError(
                f"after {timeout_s:.0f}s the workers have not taken the {distinct}-item catalog "
                f"(they report {state}); check the worker and tritonserver logs, or raise "
                "--catalog-timeout"
            )
        time.sleep(poll_s)
