"""The dashboard's HTTP server (aiohttp): the page, its JSON, and a health check."""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from services.dashboard import page


class SummarySource(Protocol):
    """What the server shows (services/dashboard/collector.py in production)."""

    def summary(self) -> dict[str, Any]: ...

    def ready(self) -> bool: ...


# The data is live: a cached copy would show a stale stream without saying so.
NO_STORE = {"Cache-Control": "no-store"}


def create_app(source: SummarySource) -> web.Application:
    """``/`` (the page), ``/api/summary`` (what it draws), ``/healthz`` (200 once reading)."""
    html = page.render()
    page_headers = {
        **NO_STORE,
        "Content-Security-Policy": page.content_security_policy(),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html", headers=page_headers)

    async def summary(request: web.Request) -> web.Response:
        return web.json_response(source.summary(), headers=NO_STORE)

    async def healthz(request: web.Request) -> web.Response:
        ready = source.ready()
        return web.json_response(
            {"status": "ok" if ready else "starting"}, status=200 if ready else 503
        )

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/api/summary", summary)
    app.router.add_get("/healthz", healthz)
    return app
