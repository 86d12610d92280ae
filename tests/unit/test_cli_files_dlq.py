"""Input files for ``produce``/``replay``, DLQ replay rules, and the CLI's own surface."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from services.benchsuite import BENCHMARKS
from services.cli import main
from services.contract import codec
from services.contract.events import CLICKS, ITEMS, ClickEvent, ItemEvent
from services.data.files import FileFormatError, read_records
from services.kafka.dlq import DeadLetterRecord, matches, replay, why_not_replayable


def test_csv_clicks_become_contract_events_with_their_key(tmp_path: Path) -> None:
    path = tmp_path / "clicks.csv"
    path.write_text(
        "event_id,user_id,item_id,ts,value,context\n"
        'e1,u1,i1,2024-01-01T00:00:00Z,4,"{""page"": ""home""}"\n'
        "e2,u2,i2,1704067260000,,\n"
    )
    recs = list(read_records(path, CLICKS))
    assert [r.key for r in recs] == [b"u1", b"u2"]
    first = ClickEvent.model_validate_json(recs[0].value)
    assert first.value == 4.0 and first.context == {"page": "home"}
    assert first.ts == datetime(2024, 1, 1, tzinfo=UTC)
    second = ClickEvent.model_validate_json(recs[1].value)
    assert second.value is None and second.ts == datetime(2024, 1, 1, 0, 1, tzinfo=UTC)


def test_csv_items_split_categories(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("item_id,title,categories\nm1,Heat,Action|Crime\n")
    (rec,) = read_records(path, ITEMS)
    item = ItemEvent.model_validate_json(rec.value)
    assert item.categories == ["Action", "Crime"] and rec.key == b"m1"


def test_a_bad_csv_row_names_its_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "clicks.csv"
    path.write_text("event_id,user_id,item_id,ts\ne1,u1,i1,2024-01-01T00:00:00Z\ne2,u2,,\n")
    with pytest.raises(
        FileFormatError,
        match=r"line 3: does not match the ClickEvent contract: item_id: Field required",
    ):
        list(read_records(path, CLICKS))


def test_an_unknown_csv_column_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    path = tmp_path / "clicks.csv"
    path.write_text("event_id,user,item_id,ts\n")
    with pytest.raises(FileFormatError, match="user are not fields of ClickEvent"):
        list(read_records(path, CLICKS))


def test_json_lines_pass_through_byte_for_byte_even_when_malformed(tmp_path: Path) -> None:
    path = tmp_path / "clicks.jsonl"
    path.write_bytes(b'{"user_id": "u1", "item_id": "i1"}\n\nnot json\n')
    recs = list(read_records(path, CLICKS))
    assert [(r.line, r.value, r.key) for r in recs] == [
        (1, b'{"user_id": "u1", "item_id": "i1"}', b"u1"),
        (3, b"not json", None),
    ]


def _dead(payload: bytes, **over: object) -> DeadLetterRecord:
    rec = codec.dead_letter(
        source_topic=CLICKS, partition=1, offset=7, error="boom", payload=payload, key=b"u1"
    )
    return DeadLetterRecord("clicks.dlq", 0, 3, rec.model_copy(update=over))


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    def send(self, topic: str, value: bytes | None, key: bytes | None = None) -> None:
        self.sent.append((topic, value, key))

    def flush(self, timeout: float = 30.0) -> None:
        pass


def test_replay_sends_original_bytes_and_key_and_skips_what_it_cannot_rebuild() -> None:
    binary = b"\xff\xfe not utf-8"
    entries = [
        _dead(b'{"a": 1}'),
        _dead(binary),
        _dead(b"x" * 10, payload_truncated=True, payload_size=3_000_000),
        _dead(b"{}", source_topic="payments"),
        _dead(b"{}", source_topic=ITEMS),  # an items record in clicks.dlq
        DeadLetterRecord("clicks.dlq", 0, 9, None, "not a DLQ record: ..."),
    ]
    out = _Recorder()
    report = replay(None, entries, producer=out)  # type: ignore[arg-type]
    assert out.sent == [(CLICKS, b'{"a": 1}', b"u1"), (CLICKS, binary, b"u1")]
    assert report.replayed == {CLICKS: 2}
    reasons = [why for _, why in report.skipped]
    assert "cannot be rebuilt" in reasons[0]
    assert "not one StreamRec consumes" in reasons[1]
    assert "found in clicks.dlq" in reasons[2]
    assert reasons[3].startswith("not a DLQ record")
    assert why_not_replayable(entries[0]) is None


def test_dry_run_and_match_send_nothing_they_should_not() -> None:
    entries = [_dead(b'{"user_id": "alice"}'), _dead(b'{"user_id": "bob"}', error="unknown item")]
    out = _Recorder()
    report = replay(None, entries, match=lambda e: matches(e, "ALICE"), producer=out)  # type: ignore[arg-type]
    assert [v for _, v, _ in out.sent] == [b'{"user_id": "alice"}'] and report.unmatched == 1
    assert matches(entries[1], "Unknown Item") and not matches(entries[1], "alice")
    dry = replay(None, entries, dry_run=True)  # type: ignore[arg-type]
    assert dry.total_replayed == 2  # counted, and no producer was even made


def test_every_command_the_issue_names_has_help() -> None:
    runner = CliRunner()
    for args in (
        ["up"], ["down"], ["status"], ["produce"], ["replay"], ["tail"], ["train"],
        ["deploy"], ["rollback"], ["eval"], ["bench"], ["dlq", "list"], ["dlq", "replay"],
    ):  # fmt: skip
        result = runner.invoke(main, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
        assert "Usage:" in result.output and len(result.output.splitlines()) > 3


def test_bench_lists_the_suite_and_refuses_unknown_names() -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["bench", "--list"])
    assert listed.exit_code == 0
    assert [line.split()[0] for line in listed.output.splitlines()] == [b.name for b in BENCHMARKS]
    wrong = runner.invoke(main, ["bench", "--only", "nope"])
    assert wrong.exit_code == 2 and "no benchmark named nope" in wrong.output


def test_replay_refuses_rate_with_speedup_and_a_missing_file() -> None:
    runner = CliRunner()
    both = runner.invoke(main, ["replay", "ml-100k", "--rate", "5", "--speedup", "10"])
    assert both.exit_code == 2 and "exclude each other" in both.output
    missing = runner.invoke(main, ["replay", "/nonexistent/clicks.csv"])
    assert missing.exit_code == 2 and "neither ml-100k, synthetic, nor a file" in missing.output


def test_replay_of_a_bad_file_says_where_and_sends_nothing(tmp_path: Path) -> None:
    path = tmp_path / "clicks.jsonl"
    good = {"user_id": "u", "item_id": "i", "ts": 1_750_000_000_000}
    path.write_text(json.dumps(good) + "\nnope\n")
    # The broker address is unreachable on purpose: the file must be refused first.
    result = CliRunner().invoke(
        main, ["replay", str(path)], env={"STREAMREC_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    )
    assert result.exit_code == 1
    assert "line 2" in result.output and "nothing was sent" in result.output
