from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from musicvae.config.sections import AudioFeatureConfig
from musicvae.data.features.audio import AudioError, decode, extract_file, feature_shapes, fix_frames, mfcc_feature_names


def test_decodes_a_real_fma_mp3(fma_clips: Path) -> None:
    cfg = AudioFeatureConfig()
    samples = decode(str(fma_clips / "fma_small" / "000" / "000002.mp3"), cfg)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - 3 * cfg.sample_rate) <= 1  # 3 s clip at 22050 Hz, mono


def test_mfcc_summary_shapes(fma_clips: Path) -> None:
    path = str(fma_clips / "fma_small" / "000" / "000005.mp3")
    mean = extract_file(path, AudioFeatureConfig())["mfcc"]
    mean_std = extract_file(path, AudioFeatureConfig(stats="mean_std", n_mfcc=20))["mfcc"]
    assert mean.shape == (40,) and np.isfinite(mean).all()
    assert mean_std.shape == (40,) and (mean_std[20:] > 0).all()
    assert mfcc_feature_names(AudioFeatureConfig(stats="mean_std", n_mfcc=20))[20] == "mfcc_std_00"


def test_offset_and_duration_change_the_window(fma_clips: Path) -> None:
    path = str(fma_clips / "fma_small" / "000" / "000005.mp3")
    a = extract_file(path, AudioFeatureConfig(offset=0.0))["mfcc"]
    b = extract_file(path, AudioFeatureConfig(offset=10.0))["mfcc"]
    assert not np.allclose(a, b)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("not_really_audio.ogg", "cannot decode"),
        ("truncated_header.mp3", "cannot decode"),
        ("empty.wav", "cannot decode"),
        ("cut_short.mp3", "truncated"),
    ],
)
def test_broken_files_raise_audio_error_with_a_reason(bad_audio: Path, name: str, reason: str) -> None:
    with pytest.raises(AudioError, match=reason):
        extract_file(str(bad_audio / name), AudioFeatureConfig())


def test_missing_and_silent_files(tmp_path: Path) -> None:
    import soundfile as sf

    with pytest.raises(AudioError, match="not found"):
        decode(str(tmp_path / "nope.wav"), AudioFeatureConfig())
    sf.write(tmp_path / "silence.wav", np.zeros(22050, dtype=np.float32), 22050)
    with pytest.raises(AudioError, match="silent"):
        decode(str(tmp_path / "silence.wav"), AudioFeatureConfig())
    sf.write(tmp_path / "blip.wav", np.ones(100, dtype=np.float32) * 0.1, 22050)
    with pytest.raises(AudioError, match="too short"):
        decode(str(tmp_path / "blip.wav"), AudioFeatureConfig())


SPECTRO = AudioFeatureConfig(features=["mfcc", "mfcc_spectrogram", "logmel"])


def test_spectrograms_have_fixed_shapes_and_agree_with_librosa(fma_clips: Path) -> None:
    import librosa

    path = str(fma_clips / "fma_small" / "000" / "000002.mp3")
    values = extract_file(path, SPECTRO)
    assert {k: v.shape for k, v in values.items()} == {"mfcc": (40,), "mfcc_spectrogram": (20, 128), "logmel": (128, 128)}
    assert feature_shapes(SPECTRO) == {k: v.shape for k, v in values.items()}
    samples = decode(path, SPECTRO)
    reference = librosa.feature.mfcc(y=samples, sr=22050, n_mfcc=20)  # 3 s -> 130 frames, cropped to 128
    np.testing.assert_allclose(values["mfcc_spectrogram"], reference[:, :128], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(values["mfcc"], librosa.feature.mfcc(y=samples, sr=22050, n_mfcc=40).mean(axis=1), rtol=1e-4, atol=1e-3)


def test_spectrograms_are_deterministic(fma_clips: Path) -> None:
    path = str(fma_clips / "fma_small" / "000" / "000005.mp3")
    a, b = extract_file(path, SPECTRO), extract_file(path, SPECTRO)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_short_clips_are_padded_by_repeating(tmp_path: Path) -> None:
    import soundfile as sf

    tone = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050).astype(np.float32)  # 1 s -> 44 frames
    sf.write(tmp_path / "short.wav", tone, 22050)
    spec = extract_file(str(tmp_path / "short.wav"), SPECTRO)["mfcc_spectrogram"]
    assert spec.shape == (20, 128)
    np.testing.assert_array_equal(spec[:, 44:88], spec[:, :44])  # wrap, not zeros
    assert fix_frames(np.arange(6).reshape(1, 6), 4).tolist() == [[0, 1, 2, 3]]


def test_feature_config_is_checked() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="include 'mfcc'"):
        AudioFeatureConfig(features=["logmel"])
    with pytest.raises(ValidationError, match="spectrogram_n_mfcc"):
        AudioFeatureConfig(features=["mfcc", "mfcc_spectrogram"], n_mfcc=13)
