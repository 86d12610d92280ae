"""``python -m services.eval``: the streaming quality replay (the start of ``streamrec eval``).

Examples::

    python -m services.eval --dataset ml-100k --start-stack          # fresh stack, flat out
    python -m services.eval --start-stack --train-on-warmup          # the ranker sees no test click
    python -m services.eval --start-stack --initial-synthetic --retrain-after-warmup
    python -m services.eval --dataset ml-100k --rate 300 --limit 20000  # a running stack
    python -m services.eval --start-stack --ablation --out docs/eval    # with and without text
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--dataset",
    type=click.Choice(["ml-100k", "synthetic"]),
    default=None,
    help="default ml-100k",
)
@click.option("--rate", type=float, default=None, help="clicks per second; 0 = flat out")
@click.option("--limit", type=int, default=None, help="replay only the first N clicks")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="report folder; default .run/eval/<run id>/",
)
@click.option("--bootstrap", default=None, help="HOST:PORT; default: the stack settings'")
@click.option("--worker-url", "worker_urls", multiple=True, help="a worker's /healthz URL")
@click.option("--start-stack", is_flag=True, default=None, help="bring the stack up and down")
@click.option(
    "--train-on-warmup",
    is_flag=True,
    default=None,
    help="serve a ranker trained on the warm-up clicks only (with --start-stack; minutes)",
)
@click.option(
    "--initial-synthetic",
    is_flag=True,
    default=None,
    help="serve a ranker trained on the synthetic data set only (with --start-stack)",
)
@click.option(
    "--retrain-after-warmup",
    is_flag=True,
    default=None,
    help="the stack's trainer retrains once the warm-up is answered (with --start-stack)",
)
@click.option(
    "--ablation",
    is_flag=True,
    default=None,
    help="replay twice on fresh stacks, with and without the items' text embeddings "
    "(with --start-stack)",
)
@click.option(
    "--withhold",
    "withhold_fraction",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=None,
    help="share of the items whose clicks are left out of the warm-up (default 0.1; 0: none)",
)
@click.option(
    "--seed", type=int, default=None, help="the synthetic data set's and the withheld items'"
)
@click.option("--no-catalog-wait", is_flag=True, help="do not wait for the workers' catalog")
@click.option(
    "--catalog-timeout",
    "catalog_timeout_s",
    type=float,
    default=None,
    help="seconds to wait for the workers' catalog (default 600)",
)
@click.option(
    "--idle-timeout",
    "idle_timeout_s",
    type=float,
    default=None,
    help="stop waiting after this many seconds without an answer (default 120)",
)
@click.option("--no-progress", is_flag=True, help="no progress bars")
def main(no_catalog_wait: bool, no_progress: bool, **given: Any) -> None:
    """Replay a data set through Kafka in time order and report quality (HR@10, NDCG@10,
    MRR@10 on consecutive clicks in the last 20%, on warm and on withheld items; catalog
    coverage and intra-list diversity), beside popularity, co-visitation item-kNN and
    river's BiasedMF replayed on the same stream; completeness, latency, throughput, CPU
    time per 1,000 clicks and the workers' stage times; PNG plots beside the report.

    A quality run needs a fresh stack (--start-stack): item statistics persist in a
    running one. Exits 1 when some accepted click did not get exactly one answer, or
    when the workers of the ablation's second stack did not turn text embeddings off.
    """
    from services.eval.app import run
    from services.eval.settings import EvalSettings
    from services.stack.settings import StackSettings
    from services.stack.supervisor import StackError

    overrides = {k: v for k, v in given.items() if v not in (None, ())}
    if no_catalog_wait:
        overrides["wait_catalog"] = False
    if no_progress:
        overrides["progress"] = False
    settings = EvalSettings(**overrides)
    # No retraining during a measured replay unless asked for: the numbers are the served
    # model's (with --retrain-after-warmup the replay says when the one retraining runs).
    # No dashboard either, where the stack has one: it would share the cores measured.
    update: dict[str, Any] = {"trainer": False}
    if "dashboard" in StackSettings.model_fields:
        update["dashboard"] = False
    stack = StackSettings().model_copy(update=update)
    builds = settings.train_on_warmup or settings.initial_synthetic
    if (builds or settings.retrain_after_warmup) and not settings.start_stack:
        raise click.UsageError(
            "--train-on-warmup, --initial-synthetic and --retrain-after-warmup need "
            "--start-stack: the stack must serve what they build"
        )
    if settings.ablation and not settings.start_stack:
        raise click.UsageError("--ablation needs --start-stack: each variant needs a fresh stack")
    if settings.start_stack and settings.bootstrap not in (None, stack.bootstrap):
        raise click.UsageError(
            f"--start-stack runs against the stack's broker ({stack.bootstrap}); "
            "drop --bootstrap or set STREAMREC_BROKER_PORT"
        )
    try:
        result, _ = run(settings, stack, echo=click.echo)
    except (StackError, RuntimeError, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(_summary(result))
    sys.exit(0 if _sound(result) else 1)


def _sound(result: dict[str, Any]) -> bool:
    """Every variant answered each accepted click once and ranked as it was set to."""
    runs = [result, *([result["ablation"]] if result.get("ablation") else [])]
    return all(r["completeness"]["exactly_once"] and r["text_embeddings"]["honoured"] for r in runs)


def _summary(result: dict[str, Any]) -> str:
    k = result["settings"]["k"]
    lines = [
        f"{name}: HR@{k} {q[f'hr@{k}']:.4f}  NDCG@{k} {q[f'ndcg@{k}']:.4f}  "
        f"MRR@{k} {q[f'mrr@{k}']:.4f}  withheld HR@{k} {q['withheld'][f'hr@{k}']:.4f}"
        for name, q in result["quality"]["models"].items()
    ]
    runs = {"system": result}
    if result.get("ablation"):
        runs[result["ablation"]["variant"]] = result["ablation"]
    for name, r in runs.items():
        c, lat, t = r["completeness"], r["latency_ms"]["end_to_end"], r["throughput"]
        cpu = ((r.get("cpu") or {}).get("whole_replay") or {}).get("cpu_s_per_1000_clicks")
        lines.append(
            f"{name}: answered {c['answered']}/{c['accepted']} accepted clicks, "
            f"{c['missing']} missing, {c['duplicate_answers']} duplicate answers; end-to-end "
            f"p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, p99 {lat['p99']:.0f} ms; "
            f"{t['clicks_per_s']:.1f} clicks/s; CPU {cpu} s per 1,000 clicks"
        )
        if not r["text_embeddings"]["honoured"]:
            lines.append(f"{name}: INVALID, the workers did not turn text embeddings off")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
