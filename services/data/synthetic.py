"""A synthetic catalogue and click stream with known ground truth, for tests and load.

Each item belongs to one topic and its text is drawn from that topic's vocabulary, so a
text model can tell topics apart. Each user has latent tastes (a Dirichlet mix over topics);
clicks follow the tastes, favour popular items, and come in sessions that tend to stay on
one topic. Everything is a pure function of the seed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from services.contract.events import ClickEvent, ItemEvent

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)
# Bounds memory of the vectorised topic draw: block x n_topics floats at a time.
_BLOCK = 65_536

# One topic per entry: "Name: nouns | adjectives". Words never repeat across topics, so the
# words alone identify a topic; the templates' filler words are shared on purpose.
_VOCABULARY = """
Cooking: sourdough, braise, skillet, risotto, marinade, pastry, broth, spices, dumplings,
    knife skills, fermentation, vinaigrette | savory, crispy, slow-cooked, homemade, seasonal
Astronomy: telescope, nebula, galaxy, exoplanet, comet, orbit, supernova, eclipse,
    constellation, black hole, meteor shower, red giant | cosmic, stellar, interstellar, celestial
Football: striker, midfield, penalty, offside, goalkeeper, derby, transfer window, free kick,
    league standings, corner, hat-trick, referee | attacking, defensive, relegated, unbeaten
Jazz: saxophone, bebop, trumpet, improvisation, swing, big band, standards, double bass,
    blue notes, quartet, scat, ballad | smoky, syncopated, modal, late-night, soulful
Gardening: compost, seedlings, perennials, pruning, raised beds, mulch, tomatoes, greenhouse,
    pollinators, bulbs, hedges, soil | organic, flowering, hardy, shady, lush
Personal finance: budget, index funds, mortgage, pension, savings, credit score, dividends,
    inflation, tax return, emergency fund, interest rates, debt | frugal, passive, compound, prudent
Hiking: trail, summit, backpack, switchbacks, ridge, trailhead, boots, campsite, waterfall,
    alpine lake, compass, blisters | rugged, scenic, steep, remote, windswept
Programming: compiler, refactoring, unit tests, algorithms, debugger, type checker, concurrency,
    API design, recursion, data structures, version control, code review | asynchronous, typed
Painting: watercolour, canvas, brushwork, palette, oil paint, still life, portraits, landscapes,
    pigments, sketchbook, glazing, easel | impressionist, vivid, abstract, muted, luminous
Medicine: diagnosis, vaccines, cardiology, antibiotics, clinical trials, surgery, immune system,
    nursing, symptoms, prescriptions, epidemiology, anatomy | chronic, preventive, pediatric
Sailing: mainsail, regatta, harbour, tacking, anchor, keel, spinnaker, tide charts, dinghy,
    knots, mooring, rigging | windward, coastal, offshore, gusty, nautical
Chess: openings, endgames, gambit, checkmate, grandmaster, pawn chains, blitz, sacrifice,
    castling, tournament, knight forks, zugzwang | positional, tactical, hypermodern, decisive
Photography: aperture, shutter speed, lenses, darkroom, lighting, tripod, exposure, film cameras,
    composition, golden hour, street scenes, prints | candid, monochrome, wide-angle, grainy
History: empires, archives, revolutions, dynasties, treaties, castles, trade routes, battles,
    manuscripts, monarchs, colonies, ruins | ancient, forgotten, imperial, turbulent, legendary
Fitness: kettlebells, squats, interval training, stretching, running shoes, protein, mobility,
    deadlifts, cardio, rest days, personal bests, core strength | intense, low-impact, explosive
Wine: vineyards, tannins, vintage, grapes, cellar, sommelier, terroir, barrels, corkscrew, rosé,
    harvest, decanter | full-bodied, crisp, oaky, dry, sparkling
"""


def _parse_vocabulary(text: str) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    entries: list[str] = []
    for line in text.strip().splitlines():
        if line.startswith(" "):
            entries[-1] += " " + line.strip()
        else:
            entries.append(line)
    topics = []
    for entry in entries:
        name, words = entry.split(":", 1)
        nouns, adjectives = words.split("|")
        topics.append(
            (
                name,
                tuple(w.strip() for w in nouns.split(",")),
                tuple(w.strip() for w in adjectives.split(",")),
            )
        )
    return topics


_TOPICS = _parse_vocabulary(_VOCABULARY)
_PSEUDO_NOUNS, _PSEUDO_ADJECTIVES = 12, 6
_SYLLABLES = ("ka", "lo", "mi", "ren", "tor", "vas", "quel", "dri", "zan", "pho", "mu", "sel")

_TITLE_TEMPLATES = (
    "The {adj} {noun}",
    "{Adj} {noun} and {noun2}",
    "A guide to {adj} {noun}",
    "{Noun} for beginners",
    "Notes on {noun} and {noun2}",
    "Why {noun} matters",
    "Inside the world of {noun}",
    "{Adj} {noun}: a field guide",
)
_SENTENCE_TEMPLATES = (
    "A {adj} look at {noun}, {noun2} and {noun3}.",
    "Covers {noun} and {adj} {noun2} in depth.",
    "Anyone who enjoys {noun} will find plenty here about {noun2}.",
    "Written for readers curious about {adj} {noun}.",
    "Practical tips on {noun2}, with a chapter on {noun}.",
    "From {noun} to {noun3}, every page is {adj}.",
)


@dataclass(frozen=True)
class TopicVocabulary:
    """A topic's name (used as the item category) and the words its items are written in."""

    name: str
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]


@dataclass(frozen=True)
class ClickModel:
    """How users click: session length, topic stickiness within a session, pace."""

    topic_stickiness: float = 0.85  # chance the next click in a session stays on its topic
    mean_session_length: float = 6.0
    mean_click_gap_s: float = 40.0  # pause between clicks inside a session

    def __post_init__(self) -> None:
        if not 0.0 <= self.topic_stickiness <= 1.0:
            raise ValueError(f"topic_stickiness={self.topic_stickiness} must be in [0, 1]")
        if self.mean_session_length < 1.0:
            raise ValueError(f"mean_session_length={self.mean_session_length} must be >= 1")
        if self.mean_click_gap_s <= 0.0:
            raise ValueError(f"mean_click_gap_s={self.mean_click_gap_s} must be > 0")


# eq=False: numpy fields make field-wise == ambiguous, so compare datasets by identity.
@dataclass(frozen=True, eq=False)
class SyntheticDataset:
    """Items and time-ordered clicks plus the latent truth that generated them."""

    items: list[ItemEvent]
    clicks: list[ClickEvent]
    topics: list[TopicVocabulary]
    user_ids: list[str]
    item_ids: list[str]
    user_tastes: npt.NDArray[np.float64]  # (n_users, n_topics); each row sums to 1
    user_activity: npt.NDArray[np.float64]  # (n_users,); share of all clicks, sums to 1
    item_topics: npt.NDArray[np.int64]  # (n_items,); index into topics
    item_popularity: npt.NDArray[np.float64]  # (n_items,); sampling weight within its topic
    click_model: ClickModel = field(default_factory=ClickModel)
    seed: int = 0

    @property
    def topic_names(self) -> list[str]:
        """Topic names in index order; they are also the items' categories."""
        return [t.name for t in self.topics]


def topic_vocabularies(n_topics: int) -> list[TopicVocabulary]:
    """The first ``n_topics`` vocabularies: hand-written ones, then pseudo-word ones.

    Past the hand-written topics the words are made of syllables: not real-looking, but
    still disjoint per topic, so large load tests keep their topics separable.
    """
    if n_topics < 1:
        raise ValueError(f"n_topics={n_topics} must be >= 1")
    vocab = [TopicVocabulary(name, nouns, adjs) for name, nouns, adjs in _TOPICS[:n_topics]]
    used = {w for t in vocab for w in t.nouns + t.adjectives}
    for k in range(len(vocab), n_topics):
        # Seeded by the topic index alone: topic k reads the same whatever the data seed.
        rng = np.random.default_rng(k)
        words: list[str] = []
        while len(words) < 1 + _PSEUDO_NOUNS + _PSEUDO_ADJECTIVES:
            size = int(rng.integers(2, 4))
            word = "".join(_SYLLABLES[int(j)] for j in rng.integers(0, len(_SYLLABLES), size))
            if word not in used:
                used.add(word)
                words.append(word)
        nouns, adjectives = words[1 : 1 + _PSEUDO_NOUNS], words[1 + _PSEUDO_NOUNS :]
        vocab.append(TopicVocabulary(words[0].capitalize(), tuple(nouns), tuple(adjectives)))
    return vocab


def generate(
    n_users: int = 200,
    n_items: int = 500,
    n_clicks: int = 10_000,
    n_topics: int = 8,
    seed: int = 0,
    *,
    taste_concentration: float = 0.3,
    popularity_skew: float = 1.0,
    click_model: ClickModel | None = None,
    start: datetime = DEFAULT_START,
    span: timedelta = timedelta(days=30),
) -> SyntheticDataset:
    """Generate a catalogue and ``n_clicks`` clicks over roughly ``span`` from ``start``.

    ``taste_concentration`` is the Dirichlet concentration: below 1 users have a few
    favourite topics, above 1 they like everything alike. ``popularity_skew`` is the Zipf
    exponent of item popularity within a topic (0 = uniform).
    """
    if n_users < 1 or n_clicks < 0:
        raise ValueError(f"need n_users >= 1 and n_clicks >= 0, got {n_users}, {n_clicks}")
    if n_items < n_topics:
        raise ValueError(f"n_items={n_items} must be >= n_topics={n_topics} (one item per topic)")
    if taste_concentration <= 0 or popularity_skew < 0:
        raise ValueError("taste_concentration must be > 0 and popularity_skew >= 0")
    if start.tzinfo is None or start < _EPOCH_FLOOR:
        raise ValueError(f"start={start} must be timezone-aware and after 2000-01-01")
    topics = topic_vocabularies(n_topics)
    rng = np.random.default_rng([seed, 0])
    item_topics = rng.permutation(np.arange(n_items, dtype=np.int64) % n_topics)
    # Zipf weights by a random rank, so popularity is unrelated to item id.
    ranks = rng.permutation(n_items).astype(np.float64) + 1.0
    item_popularity = ranks**-popularity_skew
    tastes = rng.dirichlet(np.full(n_topics, taste_concentration), size=n_users)
    # A few heavy users and many light ones, as in real logs.
    activity = rng.lognormal(0.0, 1.0, size=n_users)
    activity /= activity.sum()
    item_ids = [f"item-{i:05d}" for i in range(n_items)]
    world = SyntheticDataset(
        items=[_make_item(item_ids[i], topics[int(item_topics[i])], rng) for i in range(n_items)],
        clicks=[],  # filled in below, once the world the clicks come from exists
        topics=topics,
        user_ids=[f"user-{u:05d}" for u in range(n_users)],
        item_ids=item_ids,
        user_tastes=tastes,
        user_activity=activity,
        item_topics=item_topics,
        item_popularity=item_popularity,
        click_model=click_model or ClickModel(),
        seed=seed,
    )
    clicks = _make_clicks(
        world,
        n_clicks,
        np.random.default_rng([seed, 1]),
        start_ms=_epoch_ms(start),
        span_s=span / timedelta(seconds=1),
    )
    return replace(world, clicks=clicks)


def iter_clicks_forever(
    dataset: SyntheticDataset,
    *,
    chunk_size: int = 10_000,
    chunk_span: timedelta = timedelta(hours=1),
) -> Iterator[ClickEvent]:
    """Endless clicks by the same users on the same catalogue, continuing after the dataset's.

    For load generation. Clicks come in chunks of ``chunk_size`` spread over about
    ``chunk_span`` (plus the sessions' own length); timestamps keep increasing and event
    ids keep counting, so the stream never repeats an id. Deterministic per seed. A load
    driver that needs wall-clock timestamps should restamp the events it sends.
    """
    if chunk_size < 1 or chunk_span <= timedelta(0):
        raise ValueError("chunk_size must be >= 1 and chunk_span positive")
    last = dataset.clicks[-1].ts if dataset.clicks else DEFAULT_START
    next_ms = _epoch_ms(last) + 1
    index = len(dataset.clicks)
    span_s = chunk_span / timedelta(seconds=1)
    for chunk in itertools.count(1):
        rng = np.random.default_rng([dataset.seed, 1, chunk])
        batch = _make_clicks(dataset, chunk_size, rng, next_ms, span_s, first_index=index)
        yield from batch
        index += len(batch)
        next_ms = _epoch_ms(batch[-1].ts) + 1


def _epoch_ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


def _make_item(item_id: str, topic: TopicVocabulary, rng: np.random.Generator) -> ItemEvent:
    """An item whose title and description use only its topic's words."""

    def words() -> dict[str, str]:
        nouns = rng.choice(len(topic.nouns), size=3, replace=False)
        adj = topic.adjectives[int(rng.integers(len(topic.adjectives)))]
        n1, n2, n3 = (topic.nouns[int(k)] for k in nouns)
        return {
            "noun": n1,
            "noun2": n2,
            "noun3": n3,
            "adj": adj,
            "Noun": n1[0].upper() + n1[1:],
            "Adj": adj[0].upper() + adj[1:],
        }

    title = _TITLE_TEMPLATES[int(rng.integers(len(_TITLE_TEMPLATES)))].format(**words())
    n_sentences = int(rng.integers(2, 4))
    picks = rng.choice(len(_SENTENCE_TEMPLATES), size=n_sentences, replace=False)
    description = " ".join(_SENTENCE_TEMPLATES[int(k)].format(**words()) for k in picks)
    return ItemEvent(item_id=item_id, title=title, description=description, categories=[topic.name])


def _make_clicks(
    ds: SyntheticDataset,
    n: int,
    rng: np.random.Generator,
    start_ms: int,
    span_s: float,
    first_index: int = 0,
) -> list[ClickEvent]:
    """``n`` clicks from ``start_ms`` over about ``span_s`` seconds, ordered by time."""
    if n == 0:
        return []
    model = ds.click_model
    n_users, n_topics = ds.user_tastes.shape
    # Clicks are laid out user by user, session by session, then sorted by time at the end.
    counts = rng.multinomial(n, ds.user_activity)
    user = np.repeat(np.arange(n_users), counts)
    first = np.zeros(n, dtype=bool)
    first[(np.cumsum(counts) - counts)[counts > 0]] = True
    new_session = first | (rng.random(n) < 1.0 / model.mean_session_length)
    switch = new_session | (rng.random(n) >= model.topic_stickiness)

    # A topic drawn from the user's tastes for every click; it only takes effect where the
    # session (re)chooses its topic, and is carried forward until the next switch.
    cum = np.cumsum(ds.user_tastes, axis=1)
    candidate = np.empty(n, dtype=np.int64)
    for lo in range(0, n, _BLOCK):
        hi = min(lo + _BLOCK, n)
        draws = rng.random(hi - lo)[:, None]
        candidate[lo:hi] = (cum[user[lo:hi]] < draws).sum(axis=1)
    np.minimum(candidate, n_topics - 1, out=candidate)  # guards float round-off in cum[-1]
    last_switch = np.maximum.accumulate(np.where(switch, np.arange(n), 0))
    topic = candidate[last_switch]

    item = np.empty(n, dtype=np.int64)
    for t in range(n_topics):
        mask = topic == t
        if not mask.any():
            continue
        members = np.flatnonzero(ds.item_topics == t)
        weights = np.cumsum(ds.item_popularity[members])
        picks = np.searchsorted(weights, rng.random(int(mask.sum())) * weights[-1], side="right")
        item[mask] = members[np.minimum(picks, len(members) - 1)]

    # Gaps: short pauses inside a session. Between sessions, idle times are exponentials
    # rescaled per user to fill the span, so session starts fall uniformly within it and
    # no user's tail runs far past it.
    idle = np.where(new_session, rng.exponential(1.0, n), 0.0)
    idle_total = np.bincount(user, weights=idle, minlength=n_users) + rng.exponential(1.0, n_users)
    idle *= span_s * 1000.0 / idle_total[user]
    pause = 1000.0 + rng.exponential(model.mean_click_gap_s * 1000.0, n)
    gap = np.where(new_session, idle, pause)
    elapsed = np.cumsum(gap)
    user_base = (elapsed - gap)[first][np.cumsum(first) - 1]
    ts = start_ms + (elapsed - user_base).astype(np.int64)

    order = np.lexsort((np.arange(n), ts))
    ts = ts[order]
    # Strictly increasing milliseconds keep replays unambiguous; ties are rare, so the nudge
    # is a few ms.
    steps = np.arange(n, dtype=np.int64)
    ts = np.maximum.accumulate(ts - steps) + steps
    users, items = user[order], item[order]
    return [
        ClickEvent(
            event_id=f"syn-{ds.seed}-{first_index + k}",
            user_id=ds.user_ids[int(users[k])],
            item_id=ds.item_ids[int(items[k])],
            event_type="click",
            ts=_EPOCH + timedelta(milliseconds=int(ts[k])),
        )
        for k in range(n)
    ]
