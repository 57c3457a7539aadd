"""From one audio file to one MFCC summary vector.

Plain functions on a single file, so they are easy to test and to call from a
serial loop (the benchmark's baseline) as well as from Ray Data batches.
"""

from __future__ import annotations

import io
import os

import numpy as np

from musicvae.config import AudioFeatureConfig
from musicvae.locations import is_uri, open_input


class AudioError(Exception):
    """A file that cannot give features; the message is the reason shown to the user."""


def decode(path: str, cfg: AudioFeatureConfig) -> np.ndarray:
    """Mono float32 samples at ``cfg.sample_rate``, of at most ``cfg.duration`` seconds.

    Reads through soundfile (libsndfile: WAV, FLAC, OGG, MP3, no ffmpeg needed)
    rather than ``librosa.load``, for two reasons: librosa falls back to
    audioread on any soundfile error, which hides the real reason behind
    "no backend"; and we need the header's length to catch truncated files
    (an MP3 cut after 20 kB decodes half a second of a "30 s" track).
    Every failure becomes an AudioError with a reason.

    ``path`` may be a filesystem URI (``s3://...``): then the worker reads the
    file's bytes through pyarrow and decodes them from memory, so any node
    decodes any file of the shared collection; a plain path (local disk, NFS)
    is opened directly.
    """
    import librosa  # heavy imports, kept out of module import time
    import soundfile as sf

    source = _read_uri(path) if is_uri(path) else path
    try:
        with sf.SoundFile(source) as audio:
            native_rate, total_frames = audio.samplerate, audio.frames
            start = int(cfg.offset * native_rate)
            if start >= total_frames:
                raise AudioError(f"offset {cfg.offset} s is past the end ({total_frames / native_rate:.2f} s)")
            wanted = total_frames - start if cfg.duration is None else min(int(cfg.duration * native_rate), total_frames - start)
            audio.seek(start)
            samples = audio.read(wanted, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as exc:  # LibsndfileError, RuntimeError, OSError: all mean "unreadable"
        if source is path and not os.path.exists(path):
            raise AudioError("file not found") from None
        message = str(exc).replace(repr(source), repr(path))  # name the file, not the in-memory buffer
        raise AudioError(f"cannot decode: {type(exc).__name__}: {message.strip()[:200]}") from None
    if samples.shape[0] == 0:
        raise AudioError("no audio samples (empty file)")
    if samples.shape[0] < 0.9 * wanted:
        raise AudioError(f"truncated: the header promises {wanted / native_rate:.2f} s here, only {samples.shape[0] / native_rate:.2f} s decode")
    samples = samples.mean(axis=1)
    if native_rate != cfg.sample_rate:
        samples = librosa.resample(samples, orig_sr=native_rate, target_sr=cfg.sample_rate)
    if samples.size < cfg.n_fft:
        raise AudioError(f"too short: {samples.size / cfg.sample_rate:.3f} s, fewer samples than one FFT frame")
    if not np.isfinite(samples).all():
        raise AudioError("non-finite samples")
    if float(np.max(np.abs(samples))) < 1e-6:
        raise AudioError("silent: all samples are zero")
    return samples.astype(np.float32)


def _read_uri(location: str) -> io.BytesIO:
    """The whole file at a URI, in memory, for soundfile; AudioError if it cannot be read."""
    try:
        with open_input(location) as file:
            return io.BytesIO(file.read())
    except FileNotFoundError:
        raise AudioError("file not found") from None
    except OSError as exc:
        raise AudioError(f"cannot read: {str(exc).strip()[:200]}") from None


def fix_frames(matrix: np.ndarray, frames: int) -> np.ndarray:
    """Exactly ``frames`` columns: crop from the start, or pad by repeating the clip.

    Repeating (numpy's "wrap") keeps a short clip's statistics: zero padding
    would add "silence" frames whose MFCCs look nothing like the music.
    """
    if matrix.shape[1] >= frames:
        return matrix[:, :frames]
    return np.pad(matrix, ((0, 0), (0, frames - matrix.shape[1])), mode="wrap")


def compute_features(samples: np.ndarray, cfg: AudioFeatureConfig) -> dict[str, np.ndarray]:
    """Every requested feature kind from one mel spectrogram.

    The MFCCs are the DCT of the log-mel spectrogram (exactly what
    ``librosa.feature.mfcc(y=...)`` computes), and with the orthonormal DCT
    the first 20 of 40 coefficients are the 20-coefficient MFCCs, so the
    summary vector and the spectrogram share one transform.
    """
    import librosa

    mel = librosa.feature.melspectrogram(y=samples, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels)
    log_mel = librosa.power_to_db(mel)
    out: dict[str, np.ndarray] = {}
    if "mfcc" in cfg.features or "mfcc_spectrogram" in cfg.features:
        mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=max(cfg.n_mfcc, cfg.spectrogram_n_mfcc))
        if "mfcc" in cfg.features:
            summary = mfcc[: cfg.n_mfcc]
            parts = [summary.mean(axis=1)] + ([summary.std(axis=1)] if cfg.stats == "mean_std" else [])
            out["mfcc"] = np.concatenate(parts)
        if "mfcc_spectrogram" in cfg.features:
            out["mfcc_spectrogram"] = fix_frames(mfcc[: cfg.spectrogram_n_mfcc], cfg.frames)
    if "logmel" in cfg.features:
        out["logmel"] = fix_frames(log_mel, cfg.frames)
    return {kind: value.astype(np.float32) for kind, value in out.items()}


def feature_shapes(cfg: AudioFeatureConfig) -> dict[str, tuple[int, ...]]:
    """The shape of one track's value of each requested kind."""
    shapes = {
        "mfcc": (cfg.n_mfcc * (2 if cfg.stats == "mean_std" else 1),),
        "mfcc_spectrogram": (cfg.spectrogram_n_mfcc, cfg.frames),
        "logmel": (cfg.n_mels, cfg.frames),
    }
    return {kind: shapes[kind] for kind in cfg.features}


def mfcc_feature_names(cfg: AudioFeatureConfig) -> list[str]:
    names = [f"mfcc_mean_{i:02d}" for i in range(cfg.n_mfcc)]
    if cfg.stats == "mean_std":
        names += [f"mfcc_std_{i:02d}" for i in range(cfg.n_mfcc)]
    return names


def extract_file(path: str, cfg: AudioFeatureConfig) -> dict[str, np.ndarray]:
    """Decode once, compute every requested kind; AudioError if the file is unusable."""
    return compute_features(decode(path, cfg), cfg)
