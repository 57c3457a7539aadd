"""A labelled synthetic music collection, so the demo needs no download.

Each "genre" is a recipe: a tempo range, a pitch range, an instrument timbre
(harmonic spectrum and envelope), a rhythm (drum pattern) and a note density.
Tracks draw their tempo, key, melody, mix levels and noise at random within
the recipe, and a share of them borrow another genre's drums, so the genres
overlap: clustering is possible but not trivial, like real genres.

The output is real audio (16-bit FLAC, 22050 Hz mono) laid out as
``<out>/<genre>/<track_id>.flac`` plus ``<out>/metadata.csv`` (track_id, path,
label, title, artist). Titles and artists never contain the genre name.
Everything is deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

SAMPLE_RATE = 22050


@dataclass(frozen=True)
class Genre:
    name: str
    tempo: tuple[float, float]  # beats per minute
    pitch: tuple[int, int]  # MIDI note range of the lead instrument
    harmonics: tuple[float, ...]  # relative amplitude of harmonics 1..n (the timbre)
    attack: float  # seconds
    decay: float  # seconds, exponential decay of each note
    notes_per_beat: float
    chord: int  # notes sounding together
    drums: str  # a key of DRUM_PATTERNS
    distortion: float = 0.0  # tanh drive; 0 = clean


# Sixteen steps per bar; each string marks the step on which a drum sounds.
DRUM_PATTERNS: dict[str, dict[str, str]] = {
    "none": {},
    "four_on_floor": {"kick": "x...x...x...x...", "hat": "..x...x...x...x.", "snare": "................"},
    "boom_bap": {"kick": "x......x..x.....", "hat": "x.x.x.x.x.x.x.x.", "snare": "....x.......x..."},
    "backbeat": {"kick": "x.......x.x.....", "hat": "x.x.x.x.x.x.x.x.", "snare": "....x.......x..."},
    "chip": {"kick": "x...x...x...x...", "hat": "xxxxxxxxxxxxxxxx", "snare": "....x.......x..."},
    "brushes": {"kick": "x.......x.......", "hat": "..x...x...x...x.", "snare": "................"},
}

GENRES: tuple[Genre, ...] = (
    Genre("ambient", (60, 78), (48, 72), (1.0, 0.3, 0.1), 0.6, 2.5, 0.5, 3, "none"),
    Genre("techno", (122, 134), (33, 50), tuple(1.0 / n for n in range(1, 13)), 0.005, 0.18, 2.0, 1, "four_on_floor"),
    Genre("folk", (88, 112), (52, 76), tuple(1.0 / n**1.5 for n in range(1, 9)), 0.004, 0.7, 1.0, 3, "brushes"),
    Genre("chiptune", (140, 170), (67, 91), tuple((1.0 / n if n % 2 else 0.0) for n in range(1, 16)), 0.002, 0.12, 4.0, 1, "chip"),
    Genre("hiphop", (80, 95), (40, 64), (1.0, 0.5, 0.05, 0.15), 0.01, 0.5, 1.0, 2, "boom_bap"),
    Genre("rock", (110, 140), (40, 62), tuple(1.0 / n for n in range(1, 10)), 0.005, 0.6, 2.0, 2, "backbeat", distortion=4.0),
)

MINOR_PENTATONIC = np.array([0, 3, 5, 7, 10])

TITLE_WORDS = (
    "amber river night silver window paper moon garden echo glass morning shadow fire "
    "ocean letter city winter summer signal velvet dust harbor train mirror orchard "
    "lantern cedar northern satellite copper meadow cloud thunder violet static"
).split()
SYLLABLES = "ka lo mi ra ven to sa li dor an el be cor ny vi sha mar tel os qu".split()


def midi_to_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


def _note(freq: float, seconds: float, genre: Genre, brightness: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = np.zeros_like(t)
    for n, amp in enumerate(genre.harmonics, start=1):
        if amp == 0.0 or freq * n > SAMPLE_RATE / 2:
            continue
        wave += amp * brightness ** (n - 1) * np.sin(2 * np.pi * freq * n * t + rng.uniform(0, 2 * np.pi))
    envelope = np.minimum(t / genre.attack, 1.0) * np.exp(-t / genre.decay)
    return wave * envelope


def _drum(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "kick":
        t = np.arange(int(0.25 * SAMPLE_RATE)) / SAMPLE_RATE
        sweep = 45 + 90 * np.exp(-t / 0.03)
        return np.sin(2 * np.pi * np.cumsum(sweep) / SAMPLE_RATE) * np.exp(-t / 0.09)
    if kind == "snare":
        t = np.arange(int(0.2 * SAMPLE_RATE)) / SAMPLE_RATE
        return (0.7 * rng.standard_normal(t.size) + 0.4 * np.sin(2 * np.pi * 185 * t)) * np.exp(-t / 0.05)
    t = np.arange(int(0.06 * SAMPLE_RATE)) / SAMPLE_RATE  # hat: high-passed noise
    return 0.4 * np.diff(rng.standard_normal(t.size + 1)) * np.exp(-t / 0.015)


def _place(buffer: np.ndarray, sound: np.ndarray, start: int, gain: float) -> None:
    if start >= buffer.size:
        return
    end = min(buffer.size, start + sound.size)
    buffer[start:end] += gain * sound[: end - start]


def render_track(genre: Genre, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One clip of a genre, as float32 in [-1, 1]."""
    n = int(seconds * SAMPLE_RATE)
    lead = np.zeros(n)
    drums = np.zeros(n)
    tempo = rng.uniform(*genre.tempo)
    beat = 60.0 / tempo
    brightness = rng.uniform(0.75, 1.0)
    root = rng.integers(genre.pitch[0], genre.pitch[0] + 12)
    scale = np.concatenate([MINOR_PENTATONIC + 12 * octave for octave in range(-1, 5)]) + root
    scale = scale[(scale >= genre.pitch[0]) & (scale <= genre.pitch[1])]

    step = beat / genre.notes_per_beat
    position = rng.integers(scale.size)
    for onset in np.arange(0, seconds, step):
        position = int(np.clip(position + rng.integers(-2, 3), 0, scale.size - 1))
        for voice in range(genre.chord):
            note = scale[min(position + 2 * voice, scale.size - 1)]
            sound = _note(midi_to_hz(note), min(step * 1.5, genre.decay * 4), genre, brightness, rng)
            _place(lead, sound, int(onset * SAMPLE_RATE), 1.0 / genre.chord)
    if genre.distortion:
        lead = np.tanh(genre.distortion * lead) / np.tanh(genre.distortion)

    # A quarter of the tracks borrow another genre's drums, blurring genre borders.
    pattern_name = genre.drums if rng.random() > 0.25 else rng.choice(list(DRUM_PATTERNS))
    sixteenth = beat / 4
    for kind, steps in DRUM_PATTERNS[pattern_name].items():
        sound = _drum(kind, rng)
        for bar_start in np.arange(0, seconds, 16 * sixteenth):
            for i, mark in enumerate(steps):
                if mark == "x":
                    jitter = rng.normal(0, 0.004)
                    _place(drums, sound, int(max(0.0, bar_start + i * sixteenth + jitter) * SAMPLE_RATE), 1.0)

    mix = lead * 10 ** (rng.uniform(-3, 3) / 20) + drums * 10 ** (rng.uniform(-6, 0) / 20)
    mix += rng.uniform(0.002, 0.03) * rng.standard_normal(n)  # room noise / hiss
    return (0.9 * mix / max(np.abs(mix).max(), 1e-9)).astype(np.float32)


def _name(rng: np.random.Generator, parts: int) -> str:
    return "".join(rng.choice(SYLLABLES, size=parts)).capitalize()


def synthesize_collection(out: str | Path, per_genre: int = 60, seed: int = 0, clip_seconds: float = 5.0) -> pd.DataFrame:
    """Write the collection and its metadata.csv; return the metadata table.

    Each genre has its own small pool of artists (as in real catalogues, an
    artist mostly stays in one genre), so the text modality carries some
    signal without ever naming the genre.
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    artists = {g.name: [f"{_name(rng, 2)} {_name(rng, 3)}" for _ in range(6)] for g in GENRES}
    jobs = [(genre, i) for genre in GENRES for i in range(per_genre)]
    order = rng.permutation(len(jobs))  # neutral ids: the id says nothing about the genre

    rows = []
    for track_number, job_index in enumerate(order):
        genre, _ = jobs[job_index]
        track_rng = np.random.default_rng([seed, int(job_index)])
        audio = render_track(genre, clip_seconds, track_rng)
        track_id = f"synth_{track_number:05d}"
        relative = Path(genre.name) / f"{track_id}.flac"
        (out / genre.name).mkdir(parents=True, exist_ok=True)
        sf.write(out / relative, audio, SAMPLE_RATE, subtype="PCM_16")
        title = " ".join(track_rng.choice(TITLE_WORDS, size=int(track_rng.integers(1, 4)))).title()
        artist = str(track_rng.choice(artists[genre.name])) if track_rng.random() > 0.2 else f"{_name(track_rng, 2)} {_name(track_rng, 2)}"
        rows.append({"track_id": track_id, "path": str(relative), "label": genre.name, "title": title, "artist": artist})

    metadata = pd.DataFrame(rows).sort_values("track_id", ignore_index=True)
    metadata.to_csv(out / "metadata.csv", index=False)
    return metadata


def blobs_table(path: Path, n_per: int = 30, d: int = 8, seed: int = 0) -> Path:
    """Three labelled Gaussian blobs as a feature table (``track_id``, ``label``, f0..): a sweep's data in a second, for tests and bench/."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (3, d))
    x = np.concatenate([c + rng.normal(0, 0.5, (n_per, d)) for c in centres])
    table = pd.DataFrame(x, columns=[f"f{i}" for i in range(d)])
    table.insert(0, "label", np.repeat(["a", "b", "c"], n_per))
    table.insert(0, "track_id", [f"t{i:03d}" for i in range(len(table))])
    table.to_csv(path, index=False)
    return path
