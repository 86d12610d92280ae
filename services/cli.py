"""``streamrec``: the one command-line entry point (``streamrec --help``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from services.contract.events import CLICKS, ITEMS, RECOMMENDATIONS, ClickEvent, ItemEvent
from services.stack.settings import StackSettings


def _stack() -> StackSettings:
    return StackSettings()


def _kafka(settings: StackSettings) -> Any:
    import os

    from services.kafka.settings import KafkaSettings

    # The stack's broker unless the user points the CLI at another cluster.
    if "STREAMREC_KAFKA_BOOTSTRAP" in os.environ:
        return KafkaSettings()
    return KafkaSettings(bootstrap=settings.bootstrap)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """StreamRec: a streaming recommender. Clicks in on Kafka, recommendations out."""


# -- stack ---------------------------------------------------------------------------


@main.command()
@click.option("--detach", "-d", is_flag=True, help="start in the background and return")
@click.option("--workers", type=int, default=None, help="number of recommender workers")
def up(detach: bool, workers: int | None) -> None:
    """Start the embedded stack: tansu, tritonserver, Feast and the workers."""
    from services.stack.control import run_foreground, up_detached
    from services.stack.supervisor import StackError
    from services.stack.tools import ToolsMissing

    settings = _stack()
    if workers is not None:
        settings = settings.model_copy(update={"workers": workers})
    try:
        if detach:
            state = up_detached(settings)
            _print_ready(state)
            click.echo("stop it with `streamrec down`")
            return

        def on_ready(supervisor: Any) -> None:
            _print_ready(supervisor.state())
            click.echo("Ctrl-C stops it")

        code = run_foreground(settings, on_ready=on_ready)
    except (StackError, ToolsMissing) as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(code)


def _print_ready(state: dict[str, Any]) -> None:
    click.echo("StreamRec stack is up:")
    for name, comp in state.get("components", {}).items():
        click.echo(f"  {name:<14} {comp['status']:<10} {comp['endpoint']}")
    click.echo(f"  logs in {Path(next(iter(state['components'].values()))['log']).parent}")


@main.command()
def down() -> None:
    """Stop the embedded stack cleanly (workers first, broker last)."""
    from services.stack.control import down as stack_down

    if stack_down(_stack()):
        click.echo("stack stopped")
    else:
        click.echo("no stack was running")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def status(as_json: bool) -> None:
    """Component health, consumer lag per partition, served model versions, DLQ counts and
    the workers' figures (clicks, recommendations, degraded, users per segment).

    Exits 0 when the stack runs, 3 when it does not.
    """
    from services.stack.control import status as stack_status

    settings = _stack()
    report = stack_status(settings)
    if report["running"] and "topics" in report:
        report.update(_stream_status(settings))
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        sys.exit(0 if report["running"] else 3)
    if not report["running"]:
        click.echo(f"no stack running (run dir {report['run_dir']}); start it with `streamrec up`")
    for name, comp in report["components"].items():
        click.echo(
            f"{name:<14} {comp['status']:<10} pid {comp['pid'] or '-':<8} "
            f"restarts {comp['restarts']}  {comp['endpoint']}"
        )
    if "topics" in report:
        click.echo("topics: " + ", ".join(f"{t}({n})" for t, n in report["topics"].items()))
    for model in report.get("models", []):
        click.echo(f"model {model.get('name')} v{model.get('version')}: {model.get('state')}")
    if "lag" in report:
        lag = report["lag"]
        parts = "  ".join(f"p{p['partition']}:{p['lag']}" for p in lag["partitions"])
        click.echo(f"consumer lag ({lag['group']} on {lag['topic']}): {lag['total']}  [{parts}]")
    if "dead_letters" in report:
        click.echo(
            "dead letters: " + ", ".join(f"{t} {n}" for t, n in report["dead_letters"].items())
        )
    for url, w in report.get("workers", {}).items():
        if "error" in w:
            click.echo(f"worker {url}: {w['error']}")
            continue
        click.echo(
            f"worker {url}: {w.get('status')}  clicks {w.get('clicks')}  "
            f"recommendations {w.get('recommendations')}  degraded {w.get('degraded')}  "
            f"dead letters {w.get('dead_letters')}  users in memory {w.get('users_in_memory')}"
        )
    segments = report.get("segments", {})
    if "sizes" in segments:
        sizes = "  ".join(f"{k}:{n}" for k, n in segments["sizes"].items()) or "-"
        click.echo(f"users per segment ({segments['users']} users): {sizes}")
    elif "error" in segments:
        click.echo(f"users per segment: {segments['error']}")
    sys.exit(0 if report["running"] else 3)


def _stream_status(settings: StackSettings) -> dict[str, Any]:
    """What the broker and the workers say: lag, DLQ sizes, per-worker figures."""
    import httpx

    from services.contract.events import CLICKS_DLQ, ITEMS_DLQ
    from services.kafka.lag import consumer_lag, topic_sizes
    from services.recommender.settings import WorkerSettings

    kafka = _kafka(settings)
    group = WorkerSettings().app_id
    out: dict[str, Any] = {}
    try:
        lags = consumer_lag(kafka, group, [CLICKS])
        out["lag"] = {
            "group": group,
            "topic": CLICKS,
            "total": sum(p.lag for p in lags),
            "partitions": [
                {"partition": p.partition, "lag": p.lag, "committed": p.committed, "end": p.end}
                for p in lags
            ],
        }
        out["dead_letters"] = topic_sizes(kafka, [CLICKS_DLQ, ITEMS_DLQ])
    except Exception as exc:  # the broker is answering health checks but not this: say so
        out["lag_error"] = f"{type(exc).__name__}: {exc}"
    workers: dict[str, Any] = {}
    for i in range(settings.workers):
        url = f"http://{settings.host}:{settings.worker_web_port + i}"
        try:
            body = httpx.get(f"{url}/healthz", timeout=3).json()
        except (httpx.HTTPError, ValueError) as exc:
            workers[url] = {"error": f"no answer ({type(exc).__name__})"}
            continue
        workers[url] = {
            k: body.get(k)
            for k in (
                "status",
                "clicks",
                "recommendations",
                "degraded",
                "dead_letters",
                "duplicates",
                "catalog_items",
                "users_in_memory",
            )
        }
    out["workers"] = workers
    if settings.dashboard:
        # Workers keep user state as JSON per user: counting segments there would decode
        # every user. The dashboard already follows the answers, each with its segment.
        url = f"http://{settings.host}:{settings.dashboard_port}/api/summary"
        try:
            seg = httpx.get(url, timeout=3).json()["stream"]["segments"]
            out["segments"] = {
                "source": "the dashboard: each user's latest answer since it started",
                "users": seg["users"],
                "sizes": {s["segment"]: s["users"] for s in seg["sizes"]},
            }
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            out["segments"] = {"error": f"the dashboard did not answer ({type(exc).__name__})"}
    return out


# -- data ----------------------------------------------------------------------------


def _load_dataset(name: str, seed: int) -> tuple[list[ItemEvent], list[ClickEvent]]:
    if name == "ml-100k":
        from services.data import movielens

        path = movielens.ensure_ml100k()
        return movielens.load_items(path), movielens.load_clicks(path)
    from services.data import synthetic

    ds = synthetic.generate(seed=seed)
    return ds.items, ds.clicks


def _send_file(path: Path, topic: str, rate: float | None, limit: int | None) -> int:
    """Send a JSON-lines or CSV file's records to ``topic``, paced, with a progress bar."""
    from services.data.files import FileFormatError, read_records
    from services.kafka.io import EventProducer

    kafka = _kafka(_stack())
    try:
        chosen = list(read_records(path, topic))[:limit]
    except FileFormatError as exc:
        raise click.ClickException(f"{exc}\nnothing was sent") from exc
    producer = EventProducer(kafka)
    with _paced(chosen, rate, f"→ {topic}") as records:
        for rec in records:
            producer.send(topic, rec.value, rec.key)
    producer.flush()
    return len(chosen)


class _paced:
    """Iterate at ``rate`` items per second (flat out if None) with a progress bar."""

    def __init__(self, items: list[Any], rate: float | None, desc: str) -> None:
        from tqdm import tqdm

        self.items, self.rate = items, rate
        self.bar = tqdm(total=len(items), unit="ev", desc=desc)

    def __enter__(self) -> Iterator[Any]:
        return self._iter()

    def _iter(self) -> Iterator[Any]:
        import time

        start = time.monotonic()
        for n, item in enumerate(self.items):
            if self.rate:
                # Against the schedule, not per item, so sleeps do not accumulate drift.
                delay = start + n / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield item
            self.bar.update(1)

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


@main.command()
@click.argument("source")
@click.option(
    "--topic",
    type=click.Choice([CLICKS, ITEMS]),
    help="for a file: where its records go (JSON lines pass through unchanged)",
)
@click.option("--clicks", "n_clicks", type=int, default=None, help="send at most this many clicks")
@click.option("--skip", type=int, default=0, help="skip this many clicks first")
@click.option("--rate", type=float, default=None, help="events per second (default: flat out)")
@click.option("--no-items", is_flag=True, help="do not send the catalog first")
@click.option("--seed", type=int, default=0, help="for the synthetic generator")
def produce(
    source: str,
    topic: str | None,
    n_clicks: int | None,
    skip: int,
    rate: float | None,
    no_items: bool,
    seed: int,
) -> None:
    """Send events: SOURCE is ml-100k, synthetic, or a .jsonl/.csv file (with --topic).

    Data sets send their catalog to `items`, then their clicks in time order to `clicks`.
    JSON lines go out byte for byte (a malformed line reaches the DLQ, on purpose or not);
    CSV rows are checked against the contract first and a bad row stops the send.
    """
    from services.kafka.io import produce_events

    if source not in ("ml-100k", "synthetic"):
        if topic is None:
            raise click.UsageError("a file needs --topic clicks or --topic items")
        path = Path(source)
        if not path.is_file():
            raise click.UsageError(f"{source} is neither ml-100k, synthetic, nor a file")
        n = _send_file(path, topic, rate, n_clicks)
        click.echo(f"sent {n} records to {topic}")
        return
    kafka = _kafka(_stack())
    items, clicks = _load_dataset(source, seed)
    if not no_items:
        produce_events(kafka, ITEMS, items, progress=True, total=len(items))
    chosen = clicks[skip : skip + n_clicks if n_clicks is not None else None]
    produce_events(kafka, CLICKS, chosen, rate=rate, progress=True, total=len(chosen))


@main.command()
@click.argument("source")
@click.option("--clicks", "n_clicks", type=int, default=None, help="replay at most this many")
@click.option("--skip", type=int, default=0, help="skip this many clicks first")
@click.option("--rate", type=float, default=None, help="clicks per second")
@click.option(
    "--speedup",
    type=float,
    default=None,
    help="keep the clicks' own spacing in event time, this many times faster",
)
@click.option("--no-items", is_flag=True, help="do not send the catalog first")
@click.option("--seed", type=int, default=0, help="for the synthetic generator")
def replay(
    source: str,
    n_clicks: int | None,
    skip: int,
    rate: float | None,
    speedup: float | None,
    no_items: bool,
    seed: int,
) -> None:
    """Replay clicks in event-time order: SOURCE is ml-100k, synthetic, or a clicks file
    (.jsonl or .csv, every record a valid click).

    Paced by --rate (clicks/s), by --speedup (event-time gaps divided by it; ml-100k spans
    seven months, so try 100000), or flat out.
    """
    from services.kafka.io import EventProducer, produce_events

    if rate is not None and speedup is not None:
        raise click.UsageError("--rate and --speedup exclude each other")
    kafka = _kafka(_stack())
    items: list[ItemEvent] = []
    if source in ("ml-100k", "synthetic"):
        items, clicks = _load_dataset(source, seed)
    else:
        clicks = _clicks_file(Path(source))
    clicks = sorted(clicks, key=lambda c: c.ts)[skip:]
    clicks = clicks[:n_clicks] if n_clicks is not None else clicks
    if items and not no_items:
        produce_events(kafka, ITEMS, items, progress=True, total=len(items))
    producer = EventProducer(kafka)
    with _paced(clicks, rate, f"→ {CLICKS}") as paced:
        for c in _in_event_time(paced, speedup):
            producer.send_event(CLICKS, c)
    producer.flush()
    click.echo(f"replayed {len(clicks)} clicks")


def _clicks_file(path: Path) -> list[ClickEvent]:
    from services.contract.codec import EventDecodeError, decode_click
    from services.data.files import FileFormatError, read_records

    if not path.is_file():
        raise click.UsageError(f"{path} is neither ml-100k, synthetic, nor a file")
    out = []
    try:
        for rec in read_records(path, CLICKS):
            try:
                # A click without an event_id gets one from the file's name and line, so
                # replaying the same file twice is answered once.
                out.append(decode_click(rec.value, topic=path.name, partition=0, offset=rec.line))
            except EventDecodeError as exc:
                raise FileFormatError(f"{path}, line {rec.line}: {exc}") from exc
    except FileFormatError as exc:
        raise click.ClickException(
            f"{exc}\nnothing was sent; `streamrec produce --topic clicks` sends a file as is"
        ) from exc
    return out


def _in_event_time(clicks: Iterator[ClickEvent], speedup: float | None) -> Iterator[ClickEvent]:
    """Sleep between clicks for their event-time gap divided by ``speedup``."""
    import time

    first_ts = None
    start = time.monotonic()
    for c in clicks:
        if speedup:
            if first_ts is None:
                first_ts = c.ts
            due = start + (c.ts - first_ts).total_seconds() / speedup
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield c


# -- reading -------------------------------------------------------------------------


def _titles(kafka: Any) -> dict[str, str]:
    """Item titles from the `items` topic, so output shows names, not ids."""
    from services.kafka.titles import read_titles

    return read_titles(kafka)


def format_recommendation(rec: dict[str, Any], titles: dict[str, str], width: int = 3) -> str:
    """A recommendation as a person reads it: titles, scores and reasons."""
    flags = " [degraded]" if rec.get("degraded") else ""
    lines = [
        f"user {rec['user_id']} (event {rec['event_id']}, {rec['model_version']}, "
        f"{rec['latency_ms']:.1f} ms){flags}"
    ]
    for rank, item in enumerate(rec["items"][:width], 1):
        title = titles.get(item["item_id"], item["item_id"])
        reasons = "; ".join(item.get("reasons", []))
        lines.append(f"  {rank}. {title}  ({item['score']:.3f})  {reasons}")
    return "\n".join(lines)


def _follow(kafka: Any, from_beginning: bool, idle: float | None) -> Iterator[dict[str, Any]]:
    from services.kafka.io import read_topic

    for rec in read_topic(kafka, RECOMMENDATIONS, from_beginning=from_beginning, idle_timeout=idle):
        if rec.value:
            yield json.loads(rec.value)


@main.command()
@click.option("--user", "user_id", default=None, help="only this user's recommendations")
@click.option("--count", "-n", type=int, default=None, help="stop after this many")
@click.option("--from-beginning", is_flag=True, help="start at the oldest message")
@click.option("--idle", type=float, default=None, help="stop after this many idle seconds")
@click.option("--top", type=int, default=3, help="items shown per recommendation")
def tail(
    user_id: str | None, count: int | None, from_beginning: bool, idle: float | None, top: int
) -> None:
    """Follow `recommendations`, pretty-printed with item titles and reasons."""
    kafka = _kafka(_stack())
    titles = _titles(kafka)
    shown = 0
    for rec in _follow(kafka, from_beginning, idle):
        if user_id is not None and rec["user_id"] != user_id:
            continue
        click.echo(format_recommendation(rec, titles, top))
        shown += 1
        if count is not None and shown >= count:
            break


@main.command()
@click.option("--clicks", "n_clicks", type=int, default=3000, help="clicks to replay")
@click.option(
    "--rate", type=float, default=200.0, help="clicks per second (the latency targets' load)"
)
@click.option("--keep", is_flag=True, help="leave the stack running afterwards")
def demo(n_clicks: int, rate: float, keep: bool) -> None:
    """Start the stack, replay MovieLens-100K, show live recommendations, stop cleanly."""
    from services.demo import run_demo

    sys.exit(run_demo(_stack(), n_clicks=n_clicks, rate=rate, keep=keep))


# -- models --------------------------------------------------------------------------


def _trainer_settings(model: str) -> Any:
    """The trainer's settings; repository and Triton follow the stack's unless set."""
    import os

    from pydantic import SecretStr

    from services.trainer.settings import TrainerSettings

    stack = _stack()
    update: dict[str, Any] = {"model": model}
    if "STREAMREC_TRAINER_MODEL_REPOSITORY" not in os.environ:
        update["model_repository"] = stack.model_repository
    if "STREAMREC_TRAINER_TRITON_HTTP_URL" not in os.environ:
        update["triton_http_url"] = stack.triton_http_url
    if "STREAMREC_TRAINER_PORT" not in os.environ:
        update["port"] = stack.trainer_port
    if "STREAMREC_TRAINER_DATA_DIR" not in os.environ:
        update["data_dir"] = stack.run_dir / "trainer"
    settings = TrainerSettings()
    key = stack.admin_key()
    if settings.admin_key is None and key is not None:
        # The stack's Triton restricts model control to the key `up` wrote to its run dir.
        update["admin_key"] = SecretStr(key)
    return settings.model_copy(update=update)


def _releaser(model: str) -> Any:
    from services.trainer.layout import LayoutError
    from services.trainer.service import build_releaser

    try:
        return build_releaser(_trainer_settings(model))
    except LayoutError as exc:
        raise click.ClickException(str(exc)) from exc


def _echo_release(release: Any) -> None:
    if release.outcome == "rolled-back":
        click.echo(
            f"{release.model}: version {release.version} serves again "
            f"(version {release.previous} retired) in {release.seconds:.1f} s"
        )
    else:
        click.echo(
            f"{release.model}: version {release.version} serves "
            f"(was {release.previous}) after {release.seconds:.1f} s of checks"
        )


@main.command()
@click.option("--model", default="scorer", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def models(model: str, as_json: bool) -> None:
    """Versions of a served model: published, serving, retired, and recent releases."""
    releaser = _releaser(model)
    folder = releaser.folder
    report = {
        "model": model,
        "repository": str(folder.repository),
        "serving": folder.serving(),
        "published": folder.versions(),
        "retired": {v: folder.retired_note(v).get("reason") for v in folder.retired()},
        "releases": releaser.history(10),
    }
    try:
        report["triton_ready_version"] = releaser.control.ready_version(model)
    except Exception as exc:  # Triton down is worth showing, not failing on
        report["triton_ready_version"] = f"unknown ({exc})"
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(f"{model} in {report['repository']}")
    click.echo(
        f"  serving: version {report['serving']} (Triton reports {report['triton_ready_version']})"
    )
    click.echo(f"  published: {report['published']}")
    for version, reason in report["retired"].items():
        click.echo(f"  retired {version}: {reason}")
    for entry in report["releases"]:
        extra = f": {entry['reason']}" if entry.get("reason") else ""
        click.echo(
            f"  release {entry['outcome']} v{entry['version']} "
            f"from {entry.get('source') or '-'}{extra}"
        )


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--model", default="scorer", show_default=True)
def deploy(path: Path, model: str) -> None:
    """Release model files from PATH (a version folder or an .onnx file) into Triton.

    The files are validated (loads, finite scores of the right shape), tried on Triton under
    a scratch name, then published as the next version and loaded; the serving version keeps
    serving if any step fails. Code (model.py) always comes from the serving version.
    """
    from services.trainer.triton import TritonControlError
    from services.trainer.validate import ModelRejected

    try:
        _echo_release(_releaser(model).deploy(path.resolve(), {"by": "streamrec deploy"}))
    except ModelRejected as exc:
        raise click.ClickException(f"rejected, nothing changed: {exc}") from exc
    except TritonControlError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--model", default="scorer", show_default=True)
@click.option("--reason", default="rolled back by the operator", help="kept with the version")
def rollback(model: str, reason: str) -> None:
    """Retire the serving version; the previous published version serves again."""
    from services.trainer.layout import LayoutError
    from services.trainer.triton import TritonControlError

    try:
        _echo_release(_releaser(model).rollback(reason))
    except (LayoutError, TritonControlError) as exc:
        raise click.ClickException(str(exc)) from exc


def _exit_with(job: dict[str, Any]) -> None:
    """Print a finished retraining job; exit 0 only if it ran and was not rejected."""
    from services.trainer.client import succeeded

    click.echo(json.dumps(job, indent=2, default=str))
    sys.exit(0 if succeeded(job) else 1)


@main.command()
@click.option("--wait", is_flag=True, help="block until the new version serves or is rejected")
@click.option("--timeout", type=float, default=3600.0, help="seconds to wait at most")
def train(wait: bool, timeout: float) -> None:
    """Retrain the scorer now (asks the trainer service; without one, trains here)."""
    from services.trainer.client import TrainerUnavailable, request_training, wait_for_job

    settings = _trainer_settings("scorer")
    base = f"http://{settings.host}:{settings.port}"
    try:
        job = request_training(base)
    except TrainerUnavailable:
        if not wait:
            raise click.ClickException(
                f"no trainer service answers at {base}; start the stack (`streamrec up`) "
                "or run `streamrec train --wait` to train in this process"
            ) from None
        from services.trainer.service import Trainer

        trainer = Trainer(settings, _kafka(_stack()))
        click.echo("no trainer service: catching up with the topics and training here")
        _exit_with(trainer.train_now("requested from the command line"))
        return
    click.echo(f"retraining queued as job {job} on {base}")
    if not wait:
        return
    try:
        _exit_with(wait_for_job(base, job, timeout))
    except TimeoutError as exc:
        raise click.ClickException(str(exc)) from exc


# -- dead letters --------------------------------------------------------------------


@main.group()
def dlq() -> None:
    """Dead letters: what was rejected and why, and sending it back after a fix."""


def _dlq_topics(topic: str) -> tuple[str, ...]:
    from services.kafka.dlq import DLQ_TOPICS

    return DLQ_TOPICS if topic == "all" else (topic,)


_DLQ_TOPIC = click.option(
    "--topic",
    type=click.Choice(["all", "clicks.dlq", "items.dlq"]),
    default="all",
    show_default=True,
    help="which dead-letter topic",
)


@dlq.command("list")
@_DLQ_TOPIC
@click.option(
    "--match", default=None, help="only records whose error or payload contains this text"
)
@click.option("--limit", "-n", type=int, default=50, show_default=True, help="newest N shown")
@click.option("--json", "as_json", is_flag=True, help="one JSON record per line, in full")
def dlq_list(topic: str, match: str | None, limit: int, as_json: bool) -> None:
    """Show dead letters: where each came from, why it was rejected, and its payload."""
    from services.kafka.dlq import matches, read_dead_letters

    entries, _ = read_dead_letters(_kafka(_stack()), _dlq_topics(topic))
    chosen = [e for e in entries if matches(e, match)]
    shown = chosen[-limit:] if limit > 0 else chosen
    for e in shown:
        if as_json:
            body = e.record.model_dump(mode="json") if e.record else {"unreadable": e.unreadable}
            click.echo(json.dumps({"dlq": f"{e.topic}:{e.partition}:{e.offset}", **body}))
            continue
        if e.record is None:
            click.echo(f"{e.topic}:{e.partition}:{e.offset}  unreadable: {e.unreadable}")
            continue
        r = e.record
        preview = r.payload[:80].replace("\n", " ")
        more = "…" if len(r.payload) > 80 or r.payload_truncated else ""
        click.echo(
            f"{e.topic}:{e.partition}:{e.offset}  from {r.source_topic}:{r.partition}:{r.offset}"
            f"  {r.payload_size} B\n  error: {r.error}\n  payload ({r.payload_encoding}): "
            f"{preview}{more}"
        )
    if not as_json:
        click.echo(
            f"{len(shown)} shown of {len(chosen)} dead letters"
            + (f" matching {match!r} ({len(entries)} in all)" if match else "")
        )


@dlq.command("replay")
@_DLQ_TOPIC
@click.option(
    "--match", default=None, help="only records whose error or payload contains this text"
)
@click.option(
    "--from-beginning",
    is_flag=True,
    help="every dead letter, not only those that arrived since the last replay",
)
@click.option("--dry-run", is_flag=True, help="say what would be sent; send nothing")
def dlq_replay(topic: str, match: str | None, from_beginning: bool, dry_run: bool) -> None:
    """Send dead letters back to the topic they came from, with their original bytes and key.

    Run it after the fix: records that fail again return to the DLQ. Safe to repeat (the
    workers drop clicks they already answered; item updates are upserts). Without
    --from-beginning only dead letters that arrived since the previous replay are sent;
    with --match, the others in that span are passed over.
    """
    from services.kafka.dlq import REPLAY_GROUP, commit_position, matches, read_dead_letters, replay

    kafka = _kafka(_stack())
    entries, position = read_dead_letters(
        kafka, _dlq_topics(topic), group=REPLAY_GROUP, from_beginning=from_beginning
    )
    report = replay(kafka, entries, match=lambda e: matches(e, match), dry_run=dry_run)
    verb = "would send" if dry_run else "sent"
    sent = ", ".join(f"{n} to {t}" for t, n in sorted(report.replayed.items())) or "nothing"
    click.echo(f"{verb} {sent} ({len(entries)} dead letters read, {report.unmatched} not matching)")
    for entry, why in report.skipped:
        click.echo(f"  skipped {entry.topic}:{entry.partition}:{entry.offset}: {why}", err=True)
    if not dry_run:
        commit_position(kafka, REPLAY_GROUP, position)


# -- evaluation and benchmarks -------------------------------------------------------


def _register_eval() -> None:
    from services.eval.__main__ import main as eval_main

    main.add_command(eval_main, name="eval")


_register_eval()


@main.command()
@click.option("--only", multiple=True, help="run only the named benchmark (repeatable)")
@click.option("--list", "list_only", is_flag=True, help="name the benchmarks and stop")
def bench(only: tuple[str, ...], list_only: bool) -> None:
    """Run the benchmarks (speed and memory; they write docs/BENCHMARKS.md figures).

    Needs the source checkout (the benchmark programs live under tests/bench/). Run on a
    quiet machine: they report medians and spreads of several runs.
    """
    import subprocess

    from services.benchsuite import BENCHMARKS, REPO_ROOT

    chosen = [b for b in BENCHMARKS if not only or b.name in only]
    unknown = set(only) - {b.name for b in BENCHMARKS}
    if unknown:
        raise click.UsageError(
            f"no benchmark named {', '.join(sorted(unknown))}; "
            f"known: {', '.join(b.name for b in BENCHMARKS)}"
        )
    if list_only:
        for b in chosen:
            click.echo(f"{b.name:<20} {b.about}")
        return
    if not (REPO_ROOT / "tests" / "bench").is_dir():
        raise click.ClickException(
            f"the benchmark programs are not here ({REPO_ROOT / 'tests' / 'bench'}); "
            "run `streamrec bench` from a source checkout"
        )
    for i, b in enumerate(chosen, 1):
        click.echo(f"[{i}/{len(chosen)}] {b.name}: {b.about}")
        code = subprocess.call([sys.executable, "-m", *b.argv], cwd=REPO_ROOT)
        if code != 0:
            raise click.ClickException(f"benchmark {b.name} failed (exit {code})")


if __name__ == "__main__":
    main()
