from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from musicvae.config import AudioFeatureConfig
from musicvae.features.audio import AudioError, decode, extract_file, mfcc_feature_names


def test_decodes_a_real_fma_mp3(fma_clips: Path) -> None:
    cfg = AudioFeatureConfig()
    samples = decode(str(fma_clips / "fma_small" / "000" / "000002.mp3"), cfg)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - 3 * cfg.sample_rate) <= 1  # 3 s clip at 22050 Hz, mono


def test_mfcc_summary_shapes(fma_clips: Path) -> None:
    path = str(fma_clips / "fma_small" / "000" / "000005.mp3")
    mean = extract_file(path, AudioFeatureConfig())
    mean_std = extract_file(path, AudioFeatureConfig(stats="mean_std", n_mfcc=20))
    assert mean.shape == (40,) and np.isfinite(mean).all()
    assert mean_std.shape == (40,) and (mean_std[20:] > 0).all()
    assert mfcc_feature_names(AudioFeatureConfig(stats="mean_std", n_mfcc=20))[20] == "mfcc_std_00"


def test_offset_and_duration_change_the_window(fma_clips: Path) -> None:
    path = str(fma_clips / "fma_small" / "000" / "000005.mp3")
    a = extract_file(path, AudioFeatureConfig(offset=0.0))
    b = extract_file(path, AudioFeatureConfig(offset=10.0))
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
