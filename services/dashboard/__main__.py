"""``python -m services.dashboard``: serve the live dashboard until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import sys

from services.dashboard.settings import DashboardSettings


def main() -> int:
    settings = DashboardSettings()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from aiohttp import web

    from services.dashboard.app import create_app
    from services.dashboard.collector import build_collector

    collector = build_collector(settings)
    app = create_app(collector)

    async def stop_collector(app: web.Application) -> None:
        collector.stop()

    app.on_cleanup.append(stop_collector)
    collector.start()
    log = logging.getLogger("services.dashboard")
    log.info("dashboard on http://%s:%d/", settings.host, settings.port)
    # run_app turns SIGINT and SIGTERM into a clean shutdown (on_cleanup runs); the page
    # polls its JSON every second or two, so per-request access logs stay off.
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
