"""From one audio file to its features: the MFCC summary vector, spectrograms, musicnn's input.

Plain functions on a single file, so they are easy to test and to call from a
serial loop (the benchmark's baseline) as well as from Ray Data batches.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from musicvae.config.sections import AudioFeatureConfig
from musicvae.data.locations import is_uri, open_input


class AudioError(Exception):
    """A file that cannot give features; the message is the reason shown to the user."""


def decode(path: str, cfg: AudioFeatureConfig) -> np.ndarray:
    """Mono float32 samples at ``cfg.sample_rate``, of at most ``cfg.duration`` seconds (see :func:`read_audio`)."""
    return resample(*read_audio(path, cfg), cfg.sample_rate, cfg.n_fft)


def read_audio(path: str, cfg: AudioFeatureConfig) -> tuple[np.ndarray, int]:
    """Mono float32 samples at the file's own rate, of at most ``cfg.duration`` seconds from ``cfg.offset``, and that rate.

    Reads through soundfile (libsndfile: WAV, FLAC, OGG, MP3, no ffmpeg needed)
    rather than ``librosa.load``, for two reasons: librosa falls back to
    audioread on any soundfile error, which hides the real reason behind
    "no backend"; and we need the header's length to catch truncated files
    (an MP3 cut after 20 kB decodes half a second of a "30 s" track).
    Every failure becomes an AudioError with a reason. Each feature kind then
    resamples these samples to its own rate (:func:`resample`): a file is
    decoded once, whatever kinds are asked for.

    ``path`` may be a filesystem URI (``s3://...``): then the worker reads the
    file's bytes through pyarrow and decodes them from memory, so any node
    decodes any file of the shared collection; a plain path (local disk, NFS)
    is opened directly.
    """
    import soundfile as sf  # heavy imports, kept out of module import time

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
    return samples.mean(axis=1), native_rate


def resample(samples: np.ndarray, native_rate: int, rate: int, n_fft: int, what: str = "") -> np.ndarray:
    """``samples`` at ``rate`` (librosa's default resampler, soxr), checked: at least one FFT frame, finite, not silent.

    ``what`` names the features that need ``n_fft`` samples, for the message.
    """
    import librosa

    if native_rate != rate:
        samples = librosa.resample(samples, orig_sr=native_rate, target_sr=rate)
    if samples.size < n_fft:
        need = f" ({what} needs {n_fft} samples at {rate} Hz)" if what else ""
        raise AudioError(f"too short: {samples.size / rate:.3f} s, fewer samples than one FFT frame{need}")
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
    """The shape of one track's value of each stored kind (musicnn: each model's pooled layer and its tags)."""
    shapes = {
        "mfcc": (cfg.n_mfcc * (2 if cfg.stats == "mean_std" else 1),),
        "mfcc_spectrogram": (cfg.spectrogram_n_mfcc, cfg.frames),
        "logmel": (cfg.n_mels, cfg.frames),
    }
    out = {kind: shapes[kind] for kind in cfg.features if kind != "musicnn"}
    if "musicnn" in cfg.features:
        from musicvae.data.features import musicnn  # torch: imported only where musicnn is asked for

        for model, name in zip(cfg.musicnn.models, cfg.musicnn.inputs):
            out[name] = (musicnn.LAYERS[cfg.musicnn.layer] * (2 if cfg.musicnn.stats == "mean_std" else 1),)
            out[f"{name}{TAGS_SUFFIX}"] = (len(musicnn.TAGS[model]),)
    return out


TAGS_SUFFIX = "_tags"  # the stored kind of a musicnn model's mean tag probabilities: 'musicnn_msd_tags'


def feature_names(cfg: AudioFeatureConfig) -> dict[str, list[str]]:
    """Column names of the stored vector kinds: MFCC statistics, musicnn's layer units, musicnn's tags."""
    names = {"mfcc": mfcc_feature_names(cfg)}
    if "musicnn" in cfg.features:
        from musicvae.data.features import musicnn

        layer, size = cfg.musicnn.layer, musicnn.LAYERS[cfg.musicnn.layer]
        stats = ["mean", "std"] if cfg.musicnn.stats == "mean_std" else ["mean"]
        for model, name in zip(cfg.musicnn.models, cfg.musicnn.inputs):
            units = list(musicnn.TAGS[model]) if layer == "tags" else [f"{i:03d}" for i in range(size)]
            names[name] = [f"{layer}_{stat}_{unit}" for stat in stats for unit in units]
            names[f"{name}{TAGS_SUFFIX}"] = [f"tag_{tag}" for tag in musicnn.TAGS[model]]
    return names


def mfcc_feature_names(cfg: AudioFeatureConfig) -> list[str]:
    names = [f"mfcc_mean_{i:02d}" for i in range(cfg.n_mfcc)]
    if cfg.stats == "mean_std":
        names += [f"mfcc_std_{i:02d}" for i in range(cfg.n_mfcc)]
    return names


PATCHES = "musicnn_patches"  # extract_file's musicnn input: (n_patches, 187, 96) log-mel patches, before the network


def extract_file(path: str, cfg: AudioFeatureConfig) -> dict[str, np.ndarray]:
    """Decode once, compute every requested kind; AudioError if the file is unusable.

    For musicnn this is the network's input, the clip's log-mel patches
    (``PATCHES``); :func:`musicnn_features` runs the network over many tracks' patches at once.
    """
    samples, rate = read_audio(path, cfg)
    out = compute_features(resample(samples, rate, cfg.sample_rate, cfg.n_fft), cfg)
    if "musicnn" in cfg.features:
        from musicvae.data.features import musicnn

        at_16k = resample(samples, rate, musicnn.SAMPLE_RATE, musicnn.N_FFT, what="musicnn")
        out[PATCHES] = musicnn.patches(musicnn.log_mel(at_16k))
    return out


def musicnn_features(patches: list[np.ndarray], cfg: AudioFeatureConfig, weights: dict[str, Any], device: str = "cpu") -> dict[str, np.ndarray]:
    """Each model's pooled layer and mean tags for tracks given by their patches, every patch of every track in one pass.

    ``weights`` maps each model to its :class:`~musicvae.data.features.musicnn.Weights`.
    """
    from musicvae.data.features import musicnn

    if not patches:
        return {kind: np.empty((0, *shape), np.float32) for kind, shape in feature_shapes(cfg).items() if kind.startswith("musicnn_")}
    bounds = np.cumsum([0, *(len(p) for p in patches)])
    stacked = np.concatenate(patches)
    out = {}
    for model, name in zip(cfg.musicnn.models, cfg.musicnn.inputs):
        layers = musicnn.patch_layers(_network(weights[model], device), stacked, cfg.musicnn.batch_size)
        values, tags = layers[cfg.musicnn.layer], layers["tags"]
        out[name] = np.stack([musicnn.pool(values[a:b], cfg.musicnn.stats) for a, b in zip(bounds[:-1], bounds[1:])])
        out[f"{name}{TAGS_SUFFIX}"] = np.stack([tags[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]).astype(np.float32)
    return out


_NETWORKS: dict[tuple[str, str], Any] = {}  # loaded once per worker process, by checkpoint hash and device


def _network(weights: Any, device: str) -> Any:
    from musicvae.data.features import musicnn

    if (weights.key, device) not in _NETWORKS:
        _NETWORKS[weights.key, device] = musicnn.load_network(weights, device)
    return _NETWORKS[weights.key, device]
