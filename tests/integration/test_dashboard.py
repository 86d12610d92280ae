"""The live dashboard, as a person sees it: the embedded stack's dashboard component loaded
in a real headless Chromium, after real items, clicks and a malformed click went through
the stack. The rendered DOM (after the page's script ran) must show the live data; a
screenshot is checked and, with STREAMREC_SAVE_SCREENSHOT=docs/dashboard.png, kept."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.contract.events import CLICKS, ITEMS, RECOMMENDATIONS, ClickEvent, ItemEvent
from services.kafka.io import EventProducer, produce_events
from services.kafka.settings import KafkaSettings
from tests.support.streams import collect

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("no chromium binary (apt-get install chromium; .ci/services does it as root)")


# -- the rendered DOM, as a small tree -----------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and all(
                    child.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()
                ):
                    found.append(child)
                found.extend(child.find_all(tag, **attrs))
        return found

    def by_class(self, name: str) -> list[Node]:
        return [n for n in self.find_all() if name in n.attrs.get("class", "").split()]

    def by_id(self, id_: str) -> Node:
        nodes = self.find_all(id=id_)
        assert len(nodes) == 1, f"no single #{id_} in the page"
        return nodes[0]


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def run_chromium(
    binary: str, profile: Path, url: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    # The virtual time budget lets the page's timers (a refresh every 1.5 s) run several
    # times; virtual time waits while its fetches of /api/summary are in flight.
    out = subprocess.run(
        [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=6000",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, f"chromium exited {out.returncode}:\n{out.stderr[-3000:]}"
    return out


# -- the stack side --------------------------------------------------------------------------


def summary(url: str) -> dict[str, Any]:
    resp = httpx.get(f"{url}/api/summary", timeout=10)
    resp.raise_for_status()
    body: dict[str, Any] = resp.json()
    return body


def wait_for(what: str, check: Any, url: str, timeout: float = 120.0) -> dict[str, Any]:
    """Poll the summary until ``check(summary)`` holds; generous, the machine is shared."""
    deadline = time.monotonic() + timeout
    while True:
        body = summary(url)
        if check(body):
            return body
        if time.monotonic() > deadline:
            stream = {k: body["stream"].get(k) for k in ("throughput", "totals", "reader")}
            pytest.fail(f"the dashboard never showed {what}: {json.dumps(stream)[:2000]}")
        time.sleep(0.5)


class BackgroundClicks:
    """A steady trickle of the users' clicks (in turn), so the page's rates are live."""

    def __init__(
        self, kafka: KafkaSettings, users: list[str], items: list[str], prefix: str
    ) -> None:
        self.kafka, self.users, self.items, self.prefix = kafka, users, items, prefix
        self.sent: list[tuple[str, str]] = []  # (user, event_id)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        producer = EventProducer(self.kafka)
        n = 0
        while not self._stop.wait(0.25):
            event_id, user = f"{self.prefix}{n}", self.users[n % len(self.users)]
            click = ClickEvent(
                event_id=event_id,
                user_id=user,
                item_id=self.items[n % len(self.items)],
                ts=datetime.now(UTC),
            )
            producer.send_event(CLICKS, click)
            self.sent.append((user, event_id))
            n += 1
        producer.flush()

    def __enter__(self) -> BackgroundClicks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def test_dashboard_shows_the_live_stack_in_a_real_browser(stack, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    binary = chromium()
    kafka = KafkaSettings(bootstrap=stack.bootstrap)
    url = stack.dashboard_url
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200

    # Dead letters and catalog so far (other tests share the stack): ours add to them.
    polled = wait_for(
        "a worker's counters",
        lambda s: s["components"].get("dead_letters", {}).get("workers_answering", 0) >= 1,
        url,
    )["components"]
    before = polled["dead_letters"]["total"]
    catalog = polled["workers"][0]["catalog_items"]

    theme = f"Quillon aurora lighthouse {unique}"
    films = [
        ItemEvent(
            item_id=f"dash-{unique}-{i}",
            title=f"{theme} episode {i}",
            categories=["Arctic", "Lighthouses"],
            description=f"The {theme} saga, part {i}.",
        )
        for i in range(12)
    ]
    titles = {f.item_id: f.title for f in films}
    produce_events(kafka, ITEMS, films)
    # Clicks on items the worker has not applied yet would have nothing similar to rank.
    wait_for(
        "the new items in the worker's catalog",
        lambda s: (s["components"]["workers"][0].get("catalog_items") or 0) >= catalog + 12,
        url,
    )

    user = f"dash-user-{unique}"
    seen = [f.item_id for f in films[:3]]
    first = [
        ClickEvent(event_id=f"dash-{unique}-c{i}", user_id=user, item_id=item, ts=datetime.now(UTC))
        for i, item in enumerate(seen)
    ]
    produce_events(kafka, CLICKS, first)
    producer = EventProducer(kafka)
    producer.send(CLICKS, f"not json, dashboard test {unique}".encode(), key=user.encode())
    producer.flush()

    def ours(s: dict[str, Any]) -> list[dict[str, Any]]:
        return [r for r in s["stream"]["latest"] if r["user_id"] == user]

    # Two more users click along, so the page shows a stream rather than one person.
    others = [f"dash-other-{unique}-{i}" for i in range(2)]
    with BackgroundClicks(kafka, [user, *others], seen, f"dash-{unique}-bg-") as background:
        ready = wait_for(
            "the user's answers with our titles, a live rate, the dead letter and the model",
            lambda s: (
                any(i["title"] in titles.values() for r in ours(s) for i in r["items"])
                and s["stream"]["throughput"]["recommendations_per_s"] > 0
                and s["components"]["dead_letters"]["total"] >= before + 1
                and "scorer" in (s["components"].get("triton") or {}).get("serving", {})
            ),
            url,
        )
        served_version = ready["components"]["triton"]["serving"]["scorer"][0]

        dom = parse(run_chromium(binary, tmp_path / "profile-dom", f"{url}/", "--dump-dom").stdout)
        screenshot = tmp_path / "dashboard.png"
        run_chromium(
            binary,
            tmp_path / "profile-shot",
            f"{url}/",
            f"--screenshot={screenshot}",
            "--window-size=1400,1000",
        )
    expected = 3 + sum(1 for u, _ in background.sent if u == user)
    answers = collect(kafka, RECOMMENDATIONS, lambda v: v["user_id"] == user, expected, settle=1)
    assert len(answers) >= expected, f"{len(answers)} of the user's {expected} answers read back"
    reasons_published = {reason for r in answers for i in r["items"] for reason in i["reasons"]}

    # The page's script ran and drew the stream: our user's answers, with titles and reasons.
    rows = dom.by_id("latest").find_all("tr", data_user=user)
    assert rows, "no recommendation of our user in the rendered page"
    assert all(user in row.find_all("td")[1].text() for row in rows)
    # The rows move on while the page is read, so each row is checked against the answer it
    # draws (by event id): our films among its top three appear under their titles, not ids.
    by_event = {r["event_id"]: r for r in answers}
    for row in rows:
        answer = by_event.get(row.attrs.get("data-event-id", ""))
        assert answer is not None, f"the page shows an answer never published: {row.attrs}"
        shown = {n.text() for n in row.by_class("title")}
        ours_top = {titles[i["item_id"]] for i in answer["items"][:3] if i["item_id"] in titles}
        assert ours_top <= shown, (ours_top, shown)
    assert any(row.by_class("title") for row in rows), "the page shows no titles at all"
    shown_reasons = [n.text() for row in rows for n in row.by_class("reason")]
    assert shown_reasons and set(shown_reasons) <= reasons_published, shown_reasons
    assert dom.by_id("chips").find_all("span", data_component="stream", data_state="reading")

    # A live rate, the served model's version, and the dead letter we caused.
    assert float(dom.by_id("kpi-rec-rate").text().replace(",", "")) > 0
    scorer_rows = dom.by_id("models").find_all("tr", data_model="scorer")
    assert scorer_rows, "Triton's scorer is not listed"
    cells = [td.text() for td in scorer_rows[0].find_all("td")]
    assert cells[1:] == [served_version, "READY"], cells
    assert f"scorer:{served_version}" in dom.by_id("versions-seen").text()
    assert int(dom.by_id("kpi-dlq").text().replace(",", "")) >= before + 1

    # A real image of the page (1400 x 1000, not a blank few hundred bytes).
    data = screenshot.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 1000)
    assert len(data) > 30_000, f"screenshot only {len(data)} bytes"
    target = os.environ.get("STREAMREC_SAVE_SCREENSHOT")
    if target:
        path = Path(target) if Path(target).is_absolute() else REPO / target
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, path)
