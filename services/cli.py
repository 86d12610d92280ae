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
    """Health of every component, topics and served model versions."""
    from services.stack.control import status as stack_status

    report = stack_status(_stack())
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        if not report["running"]:
            click.echo(f"no stack running (run dir {report['run_dir']})")
        for name, comp in report["components"].items():
            click.echo(
                f"{name:<14} {comp['status']:<10} pid {comp['pid'] or '-':<8} "
                f"restarts {comp['restarts']}  {comp['endpoint']}"
            )
        if "topics" in report:
            click.echo("topics: " + ", ".join(f"{t}({n})" for t, n in report["topics"].items()))
        for model in report.get("models", []):
            click.echo(f"model {model.get('name')} v{model.get('version')}: {model.get('state')}")
    sys.exit(0 if report["running"] else 3)


# -- data ----------------------------------------------------------------------------


def _load_dataset(name: str, seed: int) -> tuple[list[ItemEvent], list[ClickEvent]]:
    if name == "ml-100k":
        from services.data import movielens

        path = movielens.ensure_ml100k()
        return movielens.load_items(path), movielens.load_clicks(path)
    from services.data import synthetic

    ds = synthetic.generate(seed=seed)
    return ds.items, ds.clicks


@main.command()
@click.argument("source")
@click.option("--topic", type=click.Choice([CLICKS, ITEMS]), help="for a JSON-lines file")
@click.option("--clicks", "n_clicks", type=int, default=None, help="send at most this many clicks")
@click.option("--skip", type=int, default=0, help="skip this many clicks first")
@click.option("--rate", type=float, default=None, help="clicks per second (default: flat out)")
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
    """Send events: SOURCE is ml-100k, synthetic, or a JSON-lines file (with --topic).

    Datasets send their catalog to `items`, then their clicks in time order to `clicks`.
    """
    from services.kafka.io import EventProducer, produce_events

    kafka = _kafka(_stack())
    if source not in ("ml-100k", "synthetic"):
        if topic is None:
            raise click.UsageError("a file needs --topic clicks or --topic items")
        producer = EventProducer(kafka)
        n = 0
        with click.open_file(source) as fh:
            for line in fh:
                if line.strip():
                    producer.send(topic, line.strip().encode())
                    n += 1
        producer.flush()
        click.echo(f"sent {n} records to {topic}")
        return
    items, clicks = _load_dataset(source, seed)
    if not no_items:
        produce_events(kafka, ITEMS, items, progress=True, total=len(items))
    chosen = clicks[skip : skip + n_clicks if n_clicks is not None else None]
    produce_events(kafka, CLICKS, chosen, rate=rate, progress=True, total=len(chosen))


# -- reading -------------------------------------------------------------------------


def _titles(kafka: Any) -> dict[str, str]:
    """Item titles from the `items` topic, so output shows names, not ids."""
    from services.contract.codec import EventDecodeError, decode_item
    from services.kafka.io import read_topic

    titles: dict[str, str] = {}
    for rec in read_topic(kafka, ITEMS, idle_timeout=1.5):
        try:
            item = decode_item(rec.value)
        except EventDecodeError:
            continue
        titles[item.item_id] = item.title
    return titles


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
    return TrainerSettings().model_copy(update=update)


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


if __name__ == "__main__":
    main()
