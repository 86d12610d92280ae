"""Triton down, hung, and swapped while clicks flow (issue 7: items 3 to 6).

What is promised: while Triton cannot answer, every click is still answered, ranked by the
fallback and marked ``degraded``, and normal ranking comes back by itself once Triton does;
a new scorer version goes live through the release path without one failed request; a
broken version, or a folder an operator copied into the repository by hand, never serves.

Two private stacks (tests/support/private_stack.py), one per module fixture: the outage
one serves the checkout's ``triton_models/`` read-only; the release one serves a scratch
copy, since releases write into the repository. Each test streams clicks at a steady rate
from a background thread and reads every answer as it arrives, with the time it arrived,
so what is asserted is each click's own outcome. Figures go to build/reliability/.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.contract.events import CLICKS, RECOMMENDATIONS, ClickEvent
from services.data import synthetic
from services.kafka.io import produce_events
from services.kafka.settings import KafkaSettings
from services.stack.control import supervisor_pid
from services.stack.health import triton_ready
from services.stack.settings import REPO_ROOT, TRITON_ADMIN_HEADER, StackSettings
from tests.bench.release_under_load import failed_requests
from tests.bench.stack_load import listen_from_end
from tests.support.faults import kafka_of, read_answers, seed_catalog, wait_for
from tests.support.private_stack import kill9, pid_of, private_stack, wait_restarted
from tests.support.reliability import record, scale
from tests.support.scorer_models import write_scorer

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

# The bound: normal ranking resumes within this long after Triton is back.
RECOVERY_DEADLINE_S = 30.0
FALLBACK_VERSION = "fallback-linear"  # services/recommender/scorer.py:LinearScorer


# -- a stream of clicks and its answers, both as they happen --------------------------------


class PacedClicks:
    """Clicks at ``rate`` per second from a background thread until :meth:`stop`, each
    with a fresh event id and timestamp; remembers when each was handed to the producer."""

    def __init__(
        self, kafka: KafkaSettings, clicks: list[ClickEvent], prefix: str, rate: float
    ) -> None:
        self.kafka, self.clicks, self.prefix, self.rate = kafka, clicks, prefix, rate
        self._sent: list[tuple[str, float]] = []
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="paced-clicks", daemon=True)

    def _events(self) -> Iterator[ClickEvent]:
        i = 0
        while not self._stop.is_set():
            click = self.clicks[i % len(self.clicks)]
            event_id = f"{self.prefix}{i}"
            self._sent.append((event_id, time.monotonic()))
            yield click.model_copy(update={"event_id": event_id, "ts": datetime.now(UTC)})
            i += 1

    def _run(self) -> None:
        try:
            produce_events(self.kafka, CLICKS, self._events(), rate=self.rate)
        except BaseException as exc:  # re-raised by stop()
            self._error = exc

    def __enter__(self) -> PacedClicks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the click producer did not stop"
        if self._error is not None:
            raise AssertionError(f"producing clicks failed: {self._error!r}") from self._error

    def sent(self) -> dict[str, float]:
        """Event id -> when it was sent (monotonic seconds)."""
        return dict(list(self._sent))


@dataclass(frozen=True)
class Answer:
    event_id: str
    at: float  # when the test read it (monotonic seconds)
    degraded: bool
    version: str


class LiveAnswers:
    """Recommendations for event ids with ``prefix``, read from the topic's end in a
    background thread as they arrive."""

    def __init__(self, kafka: KafkaSettings, prefix: str) -> None:
        self.prefix = prefix
        self._reader = listen_from_end(kafka, RECOMMENDATIONS)
        self._got: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-answers", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._reader.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            value = json.loads(msg.value() or b"{}")
            event_id = str(value.get("event_id", ""))
            if event_id.startswith(self.prefix):
                self._got.append(
                    Answer(
                        event_id,
                        time.monotonic(),
                        bool(value.get("degraded")),
                        str(value.get("model_version")),
                    )
                )

    def __enter__(self) -> LiveAnswers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._reader.close()

    def all(self) -> list[Answer]:
        return list(self._got)

    def wait_steady(self, version_prefix: str = "scorer:", n: int = 20, timeout: float = 90) -> str:
        """Wait until the last ``n`` answers all came from the scorer, none degraded;
        returns their model_version (a first ONNX call can time out and open the breaker)."""

        def steady() -> str | None:
            last = self._got[-n:]
            versions = {a.version for a in last}
            if len(last) == n and len(versions) == 1 and not any(a.degraded for a in last):
                version = versions.pop()
                return version if version.startswith(version_prefix) else None
            return None

        found: str = wait_for(f"{n} answers in a row from the scorer", steady, timeout, 0.2)
        return found


def all_answered(kafka: KafkaSettings, sent: dict[str, float], timeout: float) -> list[str]:
    """Event ids sent but never answered, read back from the start of the topic."""
    answers = read_answers(kafka, sent, timeout=timeout, settle=2.0)
    return answers.lost(sent)


def dataset(seed: int) -> synthetic.SyntheticDataset:
    return synthetic.generate(n_users=120, n_items=120, n_clicks=3000, seed=seed)


# -- the outage stack: the checkout's models, Triton stopped or killed ----------------------


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackSettings]:
    ds = dataset(seed=31)
    # Restarts are counted per component: a kill per test is far below the default cap.
    with private_stack(tmp_path_factory.mktemp("triton-outage")) as settings:
        seed_catalog(settings, ds.items, timeout=240)
        yield settings


@contextmanager
def triton_hung(settings: StackSettings) -> Iterator[Callable[[], float]]:
    """Triton hung: SIGSTOP on tritonserver, SIGCONT on the way out.

    A stopped process keeps its sockets: connections succeed, requests are never answered,
    so each scorer call runs into the worker's timeout. The supervisor sees a live process
    (only unhealthy) and leaves it, which is what a hung server gets in production too.
    Yields a function that returns when Triton is back (the moment of SIGCONT).
    """
    pid = pid_of(settings, "tritonserver")
    os.kill(pid, signal.SIGSTOP)
    back: list[float] = []
    try:
        yield lambda: back[0]
    finally:
        os.kill(pid, signal.SIGCONT)
        back.append(time.monotonic())
    assert pid_of(settings, "tritonserver") == pid, "a hung Triton must not be replaced"


@contextmanager
def triton_gone(settings: StackSettings) -> Iterator[Callable[[], float]]:
    """Triton gone: SIGKILL with the supervisor paused, so nothing restarts it for a while.

    The supervisor restarts a killed Triton within a second, so a kill alone is an outage
    as long as a restart, not the issue's 30 s. Pausing the supervisor (SIGSTOP; the other
    components run on in their own sessions) holds the port closed: connections are
    refused at once, unlike the hung case. On the way out the supervisor resumes, notices
    the exit and restarts Triton as usual; Triton is back once it reports the scorer ready.
    """
    supervisor = supervisor_pid(settings)
    assert supervisor is not None, "the private stack has no supervisor"
    os.kill(supervisor, signal.SIGSTOP)
    back: list[float] = []
    try:
        old = kill9(settings, "tritonserver")
        yield lambda: back[0]
    finally:
        os.kill(supervisor, signal.SIGCONT)
    wait_restarted(settings, "tritonserver", old, timeout=120)
    wait_for(
        "the restarted Triton's scorer",
        lambda: triton_ready(settings.triton_http_url, ["scorer"]),
        timeout=180,
        poll=0.1,
    )
    back.append(time.monotonic())


@pytest.mark.parametrize("fault", ["hung", "gone"])
def test_a_triton_outage_degrades_loses_no_click_and_recovers(
    outage_stack: StackSettings, fault: str, unique: str
) -> None:
    settings, kafka = outage_stack, kafka_of(outage_stack)
    hold_s, rate = scale((10.0, 40.0), (30.0, 120.0))
    # Full scale: at least the 10,000 clicks go through the whole outage.
    min_clicks = scale(0, 10_000)
    prefix = f"outage-{fault}-{unique}-"
    outage = triton_hung if fault == "hung" else triton_gone
    with (
        LiveAnswers(kafka, prefix) as answers,
        PacedClicks(kafka, dataset(seed=32).clicks, prefix, rate) as clicks,
    ):
        answers.wait_steady()
        time.sleep(scale(3.0, 15.0))  # mid-replay: clicks before the fault as well
        down_at = time.monotonic()
        with outage(settings) as back_at:
            time.sleep(hold_s / 2)
            # The fault is real: Triton's own health endpoint does not answer.
            assert not triton_ready(settings.triton_http_url, ["scorer"], timeout=1.0)
            time.sleep(hold_s / 2)
        back = back_at()

        def recovered() -> Answer | None:
            # The first scorer answer for a click sent after the fault began: Triton
            # could not have scored it before coming back.
            sent = clicks.sent()
            return next(
                (
                    a
                    for a in answers.all()
                    if not a.degraded and sent.get(a.event_id, 0.0) > down_at + 0.5
                ),
                None,
            )

        first: Answer = wait_for(
            f"a non-degraded answer within {RECOVERY_DEADLINE_S:.0f} s of Triton's return",
            recovered,
            timeout=max(0.0, back + RECOVERY_DEADLINE_S - time.monotonic()),
            poll=0.1,
        )
        # Steady again for a while after, and the replay's length at full scale.
        wait_for(
            "the tail of the replay",
            lambda: (
                time.monotonic() > first.at + scale(5.0, 20.0) and len(clicks.sent()) >= min_clicks
            ),
            timeout=600,
        )
        clicks.stop()
        sent = clicks.sent()
        lost = all_answered(kafka, sent, timeout=scale(90, 240))
        got = answers.all()

    during = [a for a in got if sent.get(a.event_id, 0.0) > down_at + 0.5 and a.at < back]
    after = [a for a in got if sent.get(a.event_id, 0.0) > first.at]
    per_id = Counter(a.event_id for a in got)
    record(
        f"triton_outage_{fault}",
        fault=fault,
        hold_s=hold_s,
        rate_per_s=rate,
        clicks=len(sent),
        lost=len(lost),
        answers=len(got),
        duplicates=sum(n - 1 for n in per_id.values() if n > 1),
        degraded=sum(a.degraded for a in got),
        answered_during_outage=len(during),
        degraded_during_outage=sum(a.degraded for a in during),
        triton_back_after_s=round(back - down_at, 1),
        recovery_s=round(first.at - back, 2),
        degraded_after_recovery=sum(a.degraded for a in after),
    )
    assert not lost, f"{len(lost)} of {len(sent)} clicks never answered, e.g. {lost[:5]}"
    # Answers kept coming while Triton was out, every one from the fallback.
    assert during, "no click sent during the outage was answered before Triton came back"
    assert all(a.degraded and a.version == FALLBACK_VERSION for a in during), Counter(
        (a.degraded, a.version) for a in during
    )
    # Once back, it stays back: no click sent after the first recovered answer is degraded.
    assert after, "no click was answered after ranking recovered"
    assert not any(a.degraded for a in after), Counter(a.degraded for a in after)


# -- the release stack: a scratch repository that releases write into ----------------------


@dataclass(frozen=True)
class ReleaseStack:
    settings: StackSettings
    repository: Path

    @property
    def scorer(self) -> Path:
        return self.repository / "scorer"

    def env(self) -> dict[str, str]:
        """The CLI's environment for this stack (ports, repository)."""
        return {
            **os.environ,
            **self.settings.to_env(),
            "STREAMREC_TRAINER_MODEL_REPOSITORY": str(self.repository),
            "STREAMREC_TRAINER_TRITON_HTTP_URL": self.settings.triton_http_url,
        }

    def streamrec(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the operator's CLI against this stack."""
        return subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )

    def deploy(self, source: Path) -> subprocess.CompletedProcess[str]:
        return self.streamrec("deploy", str(source))

    def repository_index(self) -> list[dict[str, Any]]:
        """Triton's model repository index (an operator's API: it takes the admin key)."""
        url = f"{self.settings.triton_http_url}/v2/repository/index"
        key = self.settings.admin_key()
        headers = {TRITON_ADMIN_HEADER: key} if key else {}
        index = httpx.post(url, json={}, headers=headers, timeout=10).json()
        assert isinstance(index, list), f"Triton's repository index: {index}"
        return index

    def ready_version(self) -> int:
        ready = [
            int(e["version"])
            for e in self.repository_index()
            if e.get("name") == "scorer" and e.get("state") == "READY"
        ]
        assert len(ready) == 1, f"Triton serves scorer versions {ready}"
        return ready[0]

    def failed(self) -> int:
        return failed_requests(self.settings)


@pytest.fixture(scope="module")
def release_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReleaseStack]:
    root = tmp_path_factory.mktemp("triton-release")
    repository = root / "triton_models"
    # A copy, not links: the tests write version folders and cut files short in it.
    shutil.copytree(
        REPO_ROOT / "triton_models",
        repository,
        ignore=shutil.ignore_patterns("__pycache__", ".*"),
    )
    ds = dataset(seed=41)
    with private_stack(root / "stack", model_repository=repository) as settings:
        seed_catalog(settings, ds.items, timeout=240)
        yield ReleaseStack(settings, repository)


def ranker_source(tmp_path: Path) -> Path:
    """The committed ranker's model files, as an operator would deploy a retrained one."""
    source = tmp_path / "ranker"
    source.mkdir()
    for name in ("model.onnx", "ranker.safetensors", "export.json"):
        shutil.copy2(REPO_ROOT / "triton_models" / "scorer" / "1" / name, source)
    return source


def test_a_promotion_under_steady_load_fails_no_request_and_switches_versions(
    release_stack: ReleaseStack, tmp_path: Path, unique: str
) -> None:
    stack, kafka = release_stack, kafka_of(release_stack.settings)
    rate, lead_s, tail_s = scale((100.0, 5.0, 8.0), (200.0, 20.0, 30.0))
    prefix = f"promote-{unique}-"
    source = ranker_source(tmp_path)
    with (
        LiveAnswers(kafka, prefix) as answers,
        PacedClicks(kafka, dataset(seed=42).clicks, prefix, rate) as clicks,
    ):
        old = answers.wait_steady()
        failed_before = stack.failed()
        time.sleep(lead_s)
        started = time.monotonic()
        done = stack.deploy(source)
        finished = time.monotonic()
        time.sleep(tail_s)
        clicks.stop()
        sent = clicks.sent()
        lost = all_answered(kafka, sent, timeout=scale(90, 240))
        got = answers.all()
    failed = stack.failed() - failed_before
    assert done.returncode == 0, done.stdout + done.stderr
    new = f"scorer:{stack.ready_version()}"
    before = [a for a in got if sent[a.event_id] < started]
    after = [a for a in got if sent[a.event_id] > finished]
    record(
        "triton_promotion_under_load",
        rate_per_s=rate,
        clicks=len(sent),
        lost=len(lost),
        degraded=sum(a.degraded for a in got),
        triton_failed_requests=failed,
        versions=dict(Counter(a.version for a in got)),
        old_version=old,
        new_version=new,
        release_s=round(finished - started, 1),
        cli=done.stdout.strip(),
    )
    assert not lost, f"{len(lost)} of {len(sent)} clicks never answered, e.g. {lost[:5]}"
    assert failed == 0, f"Triton failed {failed} scorer requests during the promotion"
    assert not any(a.degraded for a in got), "the breaker opened during the promotion"
    assert new != old
    assert {a.version for a in got} == {old, new}
    assert before and {a.version for a in before} == {old}
    # Every click sent after the release returned is ranked by the new version.
    assert after and {a.version for a in after} == {new}


def broken_candidate(kind: str, tmp_path: Path, stack: ReleaseStack) -> tuple[Path, str]:
    """A candidate of ``kind`` and what the CLI must say when it refuses it."""
    if kind == "missing_config":
        # The candidate is fine; the model's config.pbtxt is not where the release reads it.
        return write_scorer(tmp_path / kind), "is not a Triton model folder (no config.pbtxt)"
    if kind == "missing_model":
        folder = tmp_path / kind
        folder.mkdir()
        shutil.copy2(REPO_ROOT / "triton_models" / "scorer" / "1" / "export.json", folder)
        return folder, "rejected, nothing changed"
    return write_scorer(tmp_path / kind, kind), "rejected, nothing changed"


@contextmanager
def config_moved_aside(stack: ReleaseStack, kind: str) -> Iterator[None]:
    if kind != "missing_config":
        yield
        return
    config = stack.scorer / "config.pbtxt"
    aside = config.with_name("config.pbtxt.aside")
    config.rename(aside)
    try:
        yield
    finally:
        aside.rename(config)


BROKEN = ("garbage", "nan", "wrong_shape", "missing_model", "missing_config")


def test_broken_versions_are_refused_while_the_serving_one_keeps_all_traffic(
    release_stack: ReleaseStack, tmp_path: Path, unique: str
) -> None:
    stack, kafka = release_stack, kafka_of(release_stack.settings)
    rate = scale(50.0, 200.0)
    prefix = f"broken-{unique}-"
    refusals: dict[str, str] = {}
    with (
        LiveAnswers(kafka, prefix) as answers,
        PacedClicks(kafka, dataset(seed=43).clicks, prefix, rate) as clicks,
    ):
        serving = answers.wait_steady()
        published = sorted(p.name for p in stack.scorer.iterdir() if p.name.isdigit())
        failed_before = stack.failed()
        started = time.monotonic()
        for kind in BROKEN:
            source, message = broken_candidate(kind, tmp_path, stack)
            with config_moved_aside(stack, kind):
                done = stack.deploy(source)
            refusals[kind] = (done.stdout + done.stderr).strip().splitlines()[-1]
            assert done.returncode == 1, f"{kind} was not refused: {done.stdout}{done.stderr}"
            assert message in done.stderr, f"{kind}: {done.stderr}"
        finished = time.monotonic()
        time.sleep(2.0)  # answers to the last clicks sent during the attempts
        clicks.stop()
        sent = clicks.sent()
        lost = all_answered(kafka, sent, timeout=scale(90, 240))
        got = answers.all()
    failed = stack.failed() - failed_before
    attempt = [a for a in got if started <= sent[a.event_id] <= finished]
    record(
        "triton_broken_versions_refused",
        rate_per_s=rate,
        kinds=list(BROKEN),
        refusals=refusals,
        clicks=len(sent),
        clicks_during_attempts=len(attempt),
        lost=len(lost),
        degraded=sum(a.degraded for a in got),
        triton_failed_requests=failed,
        versions=dict(Counter(a.version for a in got)),
        serving=serving,
        attempts_s=round(finished - started, 1),
    )
    assert not lost, f"{len(lost)} of {len(sent)} clicks never answered, e.g. {lost[:5]}"
    assert attempt, "no click was answered while the broken versions were tried"
    # The serving version kept 100% of the traffic: every answer, none degraded.
    assert {a.version for a in got} == {serving}
    assert not any(a.degraded for a in got)
    assert failed == 0, f"Triton failed {failed} scorer requests"
    assert sorted(p.name for p in stack.scorer.iterdir() if p.name.isdigit()) == published
    assert f"scorer:{stack.ready_version()}" == serving


class VersionWatcher:
    """Lists the scorer's folder in a tight loop, as Triton or an operator would read it,
    and notes every integer folder seen with less than its finished contents.

    ``expected`` maps a version name to its files' sizes once complete; folders not in it
    are checked against ``default`` (what a new version must hold).
    """

    def __init__(self, folder: Path, expected: dict[str, dict[str, int]], default: dict[str, int]):
        self.folder, self.expected, self.default = folder, expected, default
        self.partial: Counter[str] = Counter()
        self.complete: Counter[str] = Counter()
        self.listings = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="version-watcher", daemon=True)

    def _look(self, version: Path) -> bool | None:
        """True if complete, False if partial, None if it vanished while being read."""
        want = self.expected.get(version.name, self.default)
        try:
            have = {p.name: p.stat().st_size for p in version.iterdir() if p.is_file()}
        except FileNotFoundError:
            return None  # renamed away (retired, pruned) between listing and reading
        return all(have.get(name) == size for name, size in want.items())

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir(self.folder):
                if entry.name.isdigit() and entry.is_dir():
                    complete = self._look(Path(entry.path))
                    if complete is not None:
                        (self.complete if complete else self.partial)[entry.name] += 1
            self.listings += 1

    def __enter__(self) -> VersionWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def sizes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}


def copy_carelessly(source: Path, target: Path, stop_at: float) -> None:
    """``cp -r`` into the repository, in 64 KiB writes, that dies ``stop_at`` of the way
    through the model file (the code and manifest already copied, the checkpoint never)."""
    target.mkdir()
    for name in ("model.py", "export.json"):
        shutil.copy2(source / name, target / name)
    data = (source / "model.onnx").read_bytes()
    with (target / "model.onnx").open("wb") as fh:
        for at in range(0, int(len(data) * stop_at), 64 * 1024):
            fh.write(data[at : min(at + 64 * 1024, int(len(data) * stop_at))])
            fh.flush()
            time.sleep(0.01)


def test_a_half_copied_version_is_never_loaded_and_a_publish_is_atomic(
    release_stack: ReleaseStack, tmp_path: Path, unique: str
) -> None:
    stack, kafka = release_stack, kafka_of(release_stack.settings)
    rate = scale(50.0, 200.0)
    prefix = f"half-{unique}-"
    source = ranker_source(tmp_path)
    with (
        LiveAnswers(kafka, prefix) as answers,
        PacedClicks(kafka, dataset(seed=44).clicks, prefix, rate) as clicks,
    ):
        serving = answers.wait_steady()
        serving_number = int(serving.removeprefix("scorer:"))
        code = stack.scorer / str(serving_number) / "model.py"
        existing = {
            p.name: sizes(p) for p in stack.scorer.iterdir() if p.is_dir() and p.name.isdigit()
        }
        # A new version holds the deployed files and the serving version's code.
        new_version = {**sizes(source), "model.py": code.stat().st_size}
        stray = str(max(int(v) for v in existing) + 1)
        failed_before = stack.failed()

        # 1. An operator copies a version straight into the repository; the copy dies
        #    half-way. The watcher sees it partial: what a reader of a careless copy sees.
        with VersionWatcher(stack.scorer, existing, new_version) as careless:
            copy_carelessly(stack.scorer / str(serving_number), stack.scorer / stray, 0.5)
        time.sleep(2.0)  # Triton in explicit mode never looks at the repository by itself
        during_stray = time.monotonic()

        # 2. A release through the staging path, watched the same way: the new folder
        #    appears whole or not at all, and the half copy is set aside, not served.
        with VersionWatcher(stack.scorer, existing, new_version) as publish:
            done = stack.deploy(source)
        released = time.monotonic()
        published = str(stack.ready_version())

        # 3. A rollback goes back to what served before, never to the half copy.
        time.sleep(2.0)
        rolling_back = time.monotonic()
        back = stack.streamrec("rollback", "--reason", "reliability test")
        rolled_back = time.monotonic()
        time.sleep(2.0)
        clicks.stop()
        sent = clicks.sent()
        lost = all_answered(kafka, sent, timeout=scale(90, 240))
        got = answers.all()
    failed = stack.failed() - failed_before
    index = stack.repository_index()
    stray_in_triton = [e for e in index if e.get("name") == "scorer" and e["version"] == stray]
    retired_note = stack.scorer / ".retired" / stray / "RETIRED.json"
    note = json.loads(retired_note.read_text()) if retired_note.is_file() else {}
    new = f"scorer:{published}"
    record(
        "triton_half_copied_version",
        rate_per_s=rate,
        clicks=len(sent),
        lost=len(lost),
        degraded=sum(a.degraded for a in got),
        triton_failed_requests=failed,
        versions=dict(Counter(a.version for a in got)),
        stray_version=stray,
        careless_copy_partial_sightings=careless.partial[stray],
        publish_listings=publish.listings,
        publish_partial_sightings=dict(publish.partial),
        publish_complete_sightings_of_new=publish.complete[published],
        stray_note=note.get("reason"),
        deploy=done.stdout.strip(),
        rollback=(back.stdout + back.stderr).strip(),
    )
    # The watcher can tell a partial folder: it saw the careless copy as one.
    assert careless.partial[stray] > 0
    assert done.returncode == 0, done.stdout + done.stderr
    assert published not in (stray, str(serving_number))
    # Atomic publish: the new folder was seen, never partial; the stray is no reader's
    # concern here (it was partial before the release began).
    assert publish.complete[published] > 0, "the watcher never saw the published version"
    assert not {v: n for v, n in publish.partial.items() if v != stray}, publish.partial
    # The half copy was set aside with the reason, and Triton never tried to load it.
    assert not (stack.scorer / stray).exists()
    assert "not published by a release" in str(note.get("reason")), note
    assert stray_in_triton == [], stray_in_triton
    assert back.returncode == 0, back.stdout + back.stderr
    assert stack.ready_version() == serving_number
    # Clicks: none lost, none degraded, no failed request, each answer from the version
    # serving when it was sent.
    assert not lost, f"{len(lost)} of {len(sent)} clicks never answered, e.g. {lost[:5]}"
    assert not any(a.degraded for a in got)
    assert failed == 0, f"Triton failed {failed} scorer requests"
    assert {a.version for a in got if sent[a.event_id] < during_stray} == {serving}
    assert {a.version for a in got if released < sent[a.event_id] < rolling_back} == {new}
    assert {a.version for a in got if sent[a.event_id] > rolled_back} == {serving}


def test_a_broken_highest_version_copied_in_is_set_aside_when_triton_restarts(
    release_stack: ReleaseStack, unique: str
) -> None:
    """Triton loads the highest version at start. A half copy left in the repository
    would be that version after a crash, and the scorer would not load: the stack sets
    such folders aside before every Triton start (services/stack/components.py)."""
    stack, kafka = release_stack, kafka_of(release_stack.settings)
    serving = stack.ready_version()
    stray = str(max(int(p.name) for p in stack.scorer.iterdir() if p.name.isdigit()) + 1)
    copy_carelessly(stack.scorer / str(serving), stack.scorer / stray, 0.5)
    old = kill9(stack.settings, "tritonserver")
    wait_restarted(stack.settings, "tritonserver", old)
    restarted = time.monotonic()
    back = wait_for(
        "the restarted Triton serving the scorer",
        lambda: triton_ready(stack.settings.triton_http_url, ["scorer"]),
        timeout=180,
    )
    ready_s = time.monotonic() - restarted
    note_path = stack.scorer / ".retired" / stray / "RETIRED.json"
    note = json.loads(note_path.read_text()) if note_path.is_file() else {}
    clicks = [
        ClickEvent(event_id=f"restart-{unique}-{i}", user_id=f"u{i}", item_id=c.item_id, ts=c.ts)
        for i, c in enumerate(dataset(seed=45).clicks[:50])
    ]
    produce_events(kafka, CLICKS, clicks)
    answers = read_answers(kafka, [c.event_id for c in clicks], timeout=120, settle=2.0)
    versions = Counter(str(r["model_version"]) for r in answers.records)
    record(
        "triton_restart_with_a_broken_copy",
        serving=serving,
        stray_version=stray,
        triton_ready_s=round(ready_s, 1),
        stray_note=note.get("reason"),
        answers_by_version=dict(versions),
        lost=len(answers.lost(c.event_id for c in clicks)),
    )
    assert back
    assert stack.ready_version() == serving
    assert not (stack.scorer / stray).exists()
    assert "not published by a release" in str(note.get("reason")), note
    assert not answers.lost(c.event_id for c in clicks)
    # Any degraded answers were ranked while the scorer was coming back; once back, it
    # answers for the version that served before the crash.
    assert f"scorer:{serving}" in versions, versions
