"""From one audio file to one MFCC summary vector.

Plain functions on a single file, so they are easy to test and to call from a
serial loop (the benchmark's baseline) as well as from Ray Data batches.
"""

from __future__ import annotations

import numpy as np

from musicvae.config import AudioFeatureConfig

AUDIO_EXTENSIONS = (".wav", ".mp3", ".ogg", ".flac")


class AudioError(Exception):
    """A file that cannot give features; the message is the reason shown to the user."""


def decode(path: str, cfg: AudioFeatureConfig) -> np.ndarray:
    """Mono float32 samples at ``cfg.sample_rate``, of at most ``cfg.duration`` seconds.

    librosa decodes through soundfile (libsndfile), which reads WAV, FLAC, OGG
    and MP3 without ffmpeg. Every failure becomes an AudioError with a reason.
    """
    import librosa  # heavy import, kept out of module import time

    try:
        samples, _ = librosa.load(path, sr=cfg.sample_rate, mono=True, offset=cfg.offset, duration=cfg.duration)
    except FileNotFoundError:
        raise AudioError("file not found") from None
    except Exception as exc:  # soundfile/audioread raise many types; all mean "unreadable"
        raise AudioError(f"cannot decode: {type(exc).__name__}: {str(exc).strip()[:200]}") from None
    if samples.size == 0:
        raise AudioError("no audio samples (empty file or offset past the end)")
    if samples.size < cfg.n_fft:
        raise AudioError(f"too short: {samples.size / cfg.sample_rate:.3f} s, fewer samples than one FFT frame")
    if not np.isfinite(samples).all():
        raise AudioError("non-finite samples")
    if float(np.max(np.abs(samples))) < 1e-6:
        raise AudioError("silent: all samples are zero")
    return samples


def mfcc_summary(samples: np.ndarray, cfg: AudioFeatureConfig) -> np.ndarray:
    """The study's feature: MFCCs averaged over time (optionally with their std)."""
    import librosa

    mfcc = librosa.feature.mfcc(
        y=samples, sr=cfg.sample_rate, n_mfcc=cfg.n_mfcc, n_fft=cfg.n_fft, hop_length=cfg.hop_length
    )
    parts = [mfcc.mean(axis=1)]
    if cfg.stats == "mean_std":
        parts.append(mfcc.std(axis=1))
    return np.concatenate(parts).astype(np.float32)


def mfcc_feature_names(cfg: AudioFeatureConfig) -> list[str]:
    names = [f"mfcc_mean_{i:02d}" for i in range(cfg.n_mfcc)]
    if cfg.stats == "mean_std":
        names += [f"mfcc_std_{i:02d}" for i in range(cfg.n_mfcc)]
    return names


def extract_file(path: str, cfg: AudioFeatureConfig) -> np.ndarray:
    return mfcc_summary(decode(path, cfg), cfg)
