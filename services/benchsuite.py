"""The benchmark suite, in one place: ``streamrec bench`` and ``make bench`` run this list.

Each entry is a program under ``tests/bench/`` (or ``models/``) that prints its figures;
speed is measured here, never asserted in tests (the machines are shared and noisy).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Benchmark:
    name: str
    about: str
    argv: tuple[str, ...]  # after `python -m`


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "hot-path",
        "the worker's pipeline in-process, with and without the shadow lane",
        ("tests.bench.pipeline_hot_path", "--shadow-share", "0.2"),
    ),
    Benchmark(
        "decode",
        "every decoder of outside bytes: valid, malformed and 2 MB values (median, p99)",
        ("tests.bench.decode_speed", "--count", "400", "--repeat", "3", "--limit-ms", "10"),
    ),
    Benchmark(
        "feast-push",
        "one micro-batch's feature writes (user and item-activity rows), SQLite and Redis",
        ("tests.bench.feast_push", "--rows", "10,256"),
    ),
    Benchmark(
        "scorer",
        "the scorer model: PyTorch vs ONNX fp32 vs int8 on the CPU",
        ("models.scorer_bench", "--threads", "2"),
    ),
    Benchmark(
        "scorer-triton-1",
        "Triton scorer, one user per request, 32 clients (dynamic batching)",
        ("tests.bench.scorer_triton", "--users", "1", "--clients", "32", "--requests", "3000"),
    ),
    Benchmark(
        "scorer-triton-256",
        "Triton scorer, 256 users per request",
        ("tests.bench.scorer_triton", "--users", "256", "--clients", "2", "--requests", "60"),
    ),
    Benchmark(
        "encoder-triton",
        "Triton item encoder (MiniLM int8 ONNX)",
        ("tests.bench.encoder_triton", "--instances", "2", "--threads", "1"),
    ),
    Benchmark(
        "stack-load",
        "the whole stack at offered loads 100..2000 clicks/s and flat out",
        (
            "tests.bench.stack_load",
            "--rates",
            "100,200,500,1000,2000",
            "--seconds",
            "20",
            "--flat-out",
            "10000",
            "--runs",
            "3",
        ),
    ),
    Benchmark(
        "release-under-load",
        "a model promotion during 200 clicks/s",
        ("tests.bench.release_under_load", "--rate", "200", "--clicks", "4000", "--runs", "2"),
    ),
)
