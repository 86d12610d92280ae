"""``--train-on-warmup``: a real (one-epoch) training run on a small stream's warm-up."""

from __future__ import annotations

import json
from pathlib import Path

from services.eval.stream import load_stream
from services.eval.warmup_model import train_on_warmup

REPO = Path(__file__).resolve().parents[2] / "triton_models"


def test_the_ranker_is_trained_on_the_warmup_clicks_only(tmp_path: Path) -> None:
    stream = load_stream("synthetic", limit=1500)
    repository = train_on_warmup(stream, REPO, tmp_path, echo=lambda _: None, epochs=1)

    written = (tmp_path / "initial" / "clicks.jsonl").read_text().splitlines()
    assert len(written) == stream.split
    test_ids = {c.event_id for c in stream.clicks[stream.split :]}
    assert not test_ids & {json.loads(line)["event_id"] for line in written}

    new, old = repository / "scorer" / "1" / "model.onnx", REPO / "scorer" / "1" / "model.onnx"
    assert new.stat().st_size > 0 and new.read_bytes() != old.read_bytes()
    export = json.loads((repository / "scorer" / "1" / "export.json").read_text())
    assert export  # the new version's own export record
    # Everything else is the source repository's, untouched.
    assert (repository / "scorer" / "config.pbtxt").read_text() == (
        REPO / "scorer" / "config.pbtxt"
    ).read_text()
    assert (repository / "item_encoder" / "1" / "model.onnx").stat().st_size == (
        REPO / "item_encoder" / "1" / "model.onnx"
    ).stat().st_size
    assert old.exists()  # the committed version is not touched
