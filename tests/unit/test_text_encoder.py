"""The item text encoder: torch reference, ONNX export (fp32 and int8), torch-free tokenizer.

The ONNX files are exported once per test run into a temporary folder (about 10 s).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.encoder_export import (
    FP32_FILE,
    INT8_FILE,
    STAMP_FILE,
    TOKENIZER_FILE,
    ExportResult,
    _stamp_matches,
    export_item_encoder,
)
from models.serving import ModelLoadError, OnnxModel
from models.text_encoder import TextEncoder, item_text, mean_pool_normalise, minilm_path
from models.tokenization import (
    EMBEDDING_DIM,
    INPUT_NAMES,
    OUTPUT_NAME,
    OnnxTextEncoder,
    TextTokenizer,
    decode_texts,
    length_batches,
)
from services.contract.events import ItemEvent

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "Heat",
    "Jurassic Park (1993). Categories: Action, Adventure, Sci-Fi. " * 12,  # > 128 tokens
]


def _item(item_id: str, title: str, cats: list[str], desc: str, **attrs: object) -> ItemEvent:
    return ItemEvent(
        item_id=item_id,
        title=title,
        categories=cats or None,
        description=desc or None,
        attributes=attrs or None,
    )


# Varied catalogue entries: films, books, music, products; short and long; non-English.
ITEMS = [
    _item(
        "m1",
        "Jurassic Park (1993)",
        ["Action", "Adventure", "Sci-Fi"],
        "Scientists clone dinosaurs for a theme park on a remote island, and they escape.",
        year=1993,
        ml_title="Jurassic Park (1993)",
    ),
    _item(
        "m2",
        "The Usual Suspects (1995)",
        ["Crime", "Thriller"],
        "Five criminals meet in a police line-up; one tells the story of a crime lord.",
        year=1995,
    ),
    _item(
        "m3",
        "Toy Story (1995)",
        ["Animation", "Children's", "Comedy"],
        "A cowboy doll feels threatened when a new spaceman toy arrives.",
    ),
    _item(
        "m4",
        "Blade Runner",
        ["Film-Noir", "Sci-Fi"],
        "A blade runner must pursue and terminate four replicants in Los Angeles.",
        year=1982,
        director="Ridley Scott",
    ),
    _item(
        "m5",
        "Le Fabuleux Destin d'Amélie Poulain",
        ["Comedy", "Romance"],
        "Une jeune serveuse décide d'aider les gens autour d'elle.",
        year=2001,
        language="French",
    ),
    _item(
        "p1",
        "Stainless steel chef's knife, 20 cm",
        ["Kitchen", "Cutlery"],
        "Full tang, dishwasher safe, ergonomic handle for everyday slicing.",
        brand="Victorinox",
    ),
    _item(
        "p2",
        "Cast iron skillet",
        ["Kitchen", "Cookware"],
        "Pre-seasoned 26 cm pan for searing, baking and campfire cooking.",
    ),
    _item(
        "p3",
        "Wireless noise-cancelling headphones",
        ["Electronics", "Audio"],
        "30-hour battery, USB-C charging, multipoint Bluetooth.",
        brand="Sony",
    ),
    _item(
        "b1",
        "A Brief History of Time",
        ["Books", "Science"],
        "From the big bang to black holes, cosmology for general readers.",
        author="Stephen Hawking",
        year=1988,
    ),
    _item(
        "b2",
        "The Joy of Cooking",
        ["Books", "Cookbooks"],
        "Thousands of recipes from breakfast to dessert.",
        author="Irma S. Rombauer",
    ),
    _item(
        "a1",
        "Kind of Blue",
        ["Music", "Jazz"],
        "Modal jazz with Coltrane and Bill Evans.",
        artist="Miles Davis",
        year=1959,
    ),
    _item(
        "p4",
        "Trail running shoes",
        ["Sports", "Footwear"],
        "Lightweight, grippy outsole for muddy and rocky mountain trails.",
    ),
    _item(
        "p5",
        "Beginner's watercolour set",
        ["Art supplies"],
        "24 pans, two brushes and a pad of cold-pressed paper.",
    ),
    _item(
        "b3",
        "Python for Data Analysis",
        ["Books", "Programming"],
        "Data wrangling with pandas, NumPy and Jupyter.",
        author="Wes McKinney",
    ),
    _item("p6", "Yoga mat, 6 mm", ["Fitness"], "Non-slip, eco-friendly TPE."),
    _item(
        "p7",
        "Organic Darjeeling tea, 100 g",
        ["Grocery", "Tea"],
        "First flush, loose leaf, from a single estate.",
    ),
    _item(
        "p8",
        "Telescope for beginners",
        ["Astronomy", "Optics"],
        "70 mm refractor with tripod; see the moon's craters and Saturn's rings. " * 6,
    ),
    _item("p9", "Chess set with folding board", ["Games"], "Weighted pieces, storage inside."),
    _item("p10", "Garden hose, 30 m", ["Garden"], ""),
    _item("m6", "Heat (1995)", [], ""),
]


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    """fp32 and int8 ONNX encoders and the tokenizer, exported once per test run."""
    return export_item_encoder(tmp_path_factory.mktemp("item_encoder") / "1")


@pytest.fixture(scope="session")
def torch_encoder() -> TextEncoder:
    return TextEncoder()


# -- item_text -------------------------------------------------------------------------


def test_item_text_orders_title_categories_attributes_then_description() -> None:
    item = _item(
        "b1",
        "A Brief History of Time",
        ["Books", " Science "],
        "From the big bang\nto black holes.",
        author="Stephen Hawking",
        year=1988,
        isbn="0-553-10953-7",
        signed=True,
    )
    assert item_text(item) == (
        "A Brief History of Time. Categories: Books, Science. Year: 1988. "
        "Author: Stephen Hawking. From the big bang to black holes"
    )
    assert item_text(item) == item_text(item.model_copy())  # deterministic


def test_item_text_skips_attributes_the_title_already_shows() -> None:
    movie = _item("m1", "Jurassic Park (1993)", ["Action"], "", year=1993, ml_title="x")
    assert item_text(movie) == "Jurassic Park (1993). Categories: Action"
    assert item_text(_item("t", "Title only", [], "")) == "Title only"


def test_item_text_caps_very_long_descriptions() -> None:
    item = _item("x", "Long", [], "word " * 3_000)
    assert len(item_text(item)) < 2_100


# -- the torch reference ----------------------------------------------------------------


def test_minilm_path_holds_the_model_files() -> None:
    path = minilm_path()
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()


def test_mean_pooling_ignores_padding_and_normalises() -> None:
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    out = mean_pool_normalise(hidden, mask)
    expected = torch.tensor([2.0, 2.0]) / torch.tensor(8.0).sqrt()
    torch.testing.assert_close(out[0], expected)


def test_encode_is_unit_norm_order_preserving_and_batch_independent(
    torch_encoder: TextEncoder,
) -> None:
    one_by_one = np.stack([torch_encoder.encode([s])[0] for s in SENTENCES])
    batched = torch_encoder.encode(SENTENCES, batch_size=2)
    assert batched.shape == (len(SENTENCES), EMBEDDING_DIM) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    sims = batched @ batched.T
    assert sims[0, 1] > 0.6 > sims[0, 2]  # eating food ~ eating bread, not carrying a baby
    assert torch_encoder.encode([]).shape == (0, EMBEDDING_DIM)


# -- ONNX export ------------------------------------------------------------------------


def test_fp32_onnx_matches_torch_for_any_batch_and_length(
    exported: ExportResult, torch_encoder: TextEncoder
) -> None:
    onnx_model = OnnxModel(exported.fp32, INPUT_NAMES, (OUTPUT_NAME,))
    for texts in (SENTENCES[:1], SENTENCES[:3], SENTENCES):  # batch 1/3/5, 8 to 128 tokens
        tokens = torch_encoder.tokenize(texts)
        with torch.inference_mode():
            expected = torch_encoder.model(*(torch.from_numpy(tokens[n]) for n in INPUT_NAMES))
        got = onnx_model.run(tokens)[OUTPUT_NAME]
        assert got.shape == (len(texts), EMBEDDING_DIM)
        assert np.max(np.abs(got - expected.numpy())) <= 1e-4


def test_int8_onnx_stays_close_to_fp32_on_item_texts(exported: ExportResult) -> None:
    texts = [item_text(i) for i in ITEMS]
    fp32 = OnnxTextEncoder(exported.fp32, exported.tokenizer).encode(texts)
    int8 = OnnxTextEncoder(exported.int8, exported.tokenizer).encode(texts)
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(fp32 * int8, axis=1)
    assert cosine.min() >= 0.98, dict(zip((i.item_id for i in ITEMS), cosine.round(4), strict=True))
    # Similarities between items, what retrieval uses, move by a few hundredths at most.
    assert np.max(np.abs(fp32 @ fp32.T - int8 @ int8.T)) <= 0.06


def test_onnx_encoder_matches_torch_encoder_and_splits_groups(
    exported: ExportResult, torch_encoder: TextEncoder
) -> None:
    onnx_enc = OnnxTextEncoder(exported.fp32, exported.tokenizer)
    expected = torch_encoder.encode(SENTENCES)
    np.testing.assert_allclose(onnx_enc.encode(SENTENCES, batch_size=2), expected, atol=1e-4)
    groups = onnx_enc.encode_groups([SENTENCES[:2], [], SENTENCES[2:]], batch_size=3)
    assert [g.shape[0] for g in groups] == [2, 0, 3]
    np.testing.assert_allclose(np.concatenate(groups), expected, atol=1e-4)


def test_export_is_skipped_when_up_to_date(exported: ExportResult) -> None:
    """Up to date means nothing is exported or written: every file keeps its inode and
    modification time (how long the check takes is not a test's business)."""

    def files() -> dict[str, tuple[int, int, int]]:
        return {
            p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(exported.out_dir.iterdir())
        }

    before = files()
    again = export_item_encoder(exported.out_dir)
    assert again.skipped and again.fingerprint == exported.fingerprint
    assert files() == before
    stamp = json.loads((exported.out_dir / STAMP_FILE).read_text())
    assert set(stamp["files"]) == {INT8_FILE, FP32_FILE, TOKENIZER_FILE}


def test_stale_or_damaged_exports_are_not_trusted(exported: ExportResult, tmp_path: Path) -> None:
    assert _stamp_matches(exported.out_dir, exported.fingerprint, need_fp32=True)
    assert not _stamp_matches(exported.out_dir, "another-fingerprint", need_fp32=True)
    copy = tmp_path / "1"
    copy.mkdir()
    for name in (STAMP_FILE, TOKENIZER_FILE, INT8_FILE):
        (copy / name).write_bytes((exported.out_dir / name).read_bytes())
    assert _stamp_matches(copy, exported.fingerprint, need_fp32=False)
    assert not _stamp_matches(copy, exported.fingerprint, need_fp32=True)  # fp32 missing
    (copy / TOKENIZER_FILE).write_text("{}")
    assert not _stamp_matches(copy, exported.fingerprint, need_fp32=False)


# -- the torch-free tokenizer ------------------------------------------------------------


def test_tokenizer_matches_transformers(exported: ExportResult, torch_encoder: TextEncoder) -> None:
    texts = [
        *SENTENCES,
        *(item_text(i) for i in ITEMS),
        "",
        "Café naïve RÉSUMÉ — 東京 🚀",
        "tabs\tand\nnewlines   and \u00a0nbsp",
        "unbelievably-hyphenated_words and URLs https://example.com/a?b=c",
    ]
    for max_length in (16, 128):
        ours = TextTokenizer(exported.tokenizer, max_length=max_length)(texts)
        theirs = torch_encoder.tokenize(texts, max_length=max_length)
        for name in INPUT_NAMES:
            assert ours[name].dtype == np.int64
            np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    # Pads to the batch's longest, not to the file's fixed 128.
    assert TextTokenizer(exported.tokenizer)(["a b"])["input_ids"].shape == (1, 4)


def test_tokenizer_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        TextTokenizer(tmp_path / "missing.json")
    bad = tmp_path / "tokenizer.json"
    bad.write_text("not json")
    with pytest.raises(ModelLoadError, match="cannot load"):
        TextTokenizer(bad)


def test_length_batches_cover_every_index_once_longest_first() -> None:
    lengths = [3, 9, 1, 9, 5, 2, 7]
    batches = length_batches(lengths, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    assert flat[:2].tolist() == [1, 3]  # ties keep input order
    with pytest.raises(ValueError):
        length_batches(lengths, 0)


def test_decode_texts_names_the_bad_element() -> None:
    assert decode_texts([b"caf\xc3\xa9", "already str"]) == ["café", "already str"]
    with pytest.raises(ValueError, match=r"TEXT\[1\] is not valid UTF-8"):
        decode_texts([b"ok", b"\xff\xfe"])
    with pytest.raises(ValueError, match=r"TEXT\[0\] is int"):
        decode_texts([3])
