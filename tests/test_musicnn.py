"""musicnn in PyTorch is the original network: tag probabilities against the TensorFlow package's own, without TensorFlow.

The references (tests/data/musicnn_reference.json) were written once by
bench/musicnn_reference.py with the original musicnn package under
tensorflow-cpu 2.15.1: ten fma_small clips and two Creative Commons excerpts
through the original preprocessing and graph, and one short clip repeat-padded
by that script. Here the same files go through musicvae's own decoding
(soundfile + librosa's resampler), preprocessing and the PyTorch network with
weights read from the wheel's checkpoints by musicvae's TensorBundle reader.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musicvae.config.sections import AudioFeatureConfig
from musicvae.data.features import musicnn
from musicvae.data.features.audio import PATCHES, AudioError, extract_file, read_audio, resample
from musicvae.data.features.tf_checkpoint import CheckpointError, read_checkpoint

REFERENCE = Path(__file__).parent / "data" / "musicnn_reference.json"
WHOLE_FILE = AudioFeatureConfig(features=["mfcc", "musicnn"], duration=None)


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def networks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, musicnn.Musicnn]:
    cache = tmp_path_factory.mktemp("cache")
    return {model: musicnn.load_network(musicnn.converted_weights(model, cache)) for model in musicnn.CHECKPOINTS}


def our_patches(path: Path) -> np.ndarray:
    return extract_file(str(path), WHOLE_FILE)[PATCHES]


def test_the_checkpoint_reader_reads_every_variable_and_its_checksum() -> None:
    variables = read_checkpoint(f"{musicnn.checkpoint_dir('MSD')}/")
    assert len(variables) == 150  # 48 weights, their 96 Adam slots, 4 BN statistics... as TensorFlow lists them
    assert variables["conv2d/kernel"].shape == (7, 38, 1, 204) and variables["dense_1/kernel"].shape == (200, 50)
    assert variables["batch_normalization_9/moving_variance"].shape == (1506,)
    assert all(np.isfinite(v).all() for v in variables.values())


@pytest.mark.parametrize("model", ["MSD", "MTT"])
def test_tag_probabilities_match_the_original_package(model: str, shared_data: Path, reference: dict, networks: dict) -> None:
    checked = 0
    for name, result in reference["results"].items():
        patches = our_patches(shared_data / name)
        ours = musicnn.patch_layers(networks[model], patches)
        theirs = result[musicnn.CHECKPOINTS[model]]
        assert len(patches) == theirs["n_patches"] == len(theirs["taggram"]), name
        np.testing.assert_allclose(ours["tags"], np.array(theirs["taggram"]), atol=1e-3, rtol=0, err_msg=f"{name} {model}: tags")
        # musicnn 0.1.0's extractor appends the first patch's penultimate features for every later patch (it unpacks the
        # later ones as ``backend_`` and appends ``penultimate_``): only the first patch's are the network's.
        penultimate = np.array(theirs["penultimate"])
        assert (penultimate == penultimate[0]).all(), f"{name}: the original's penultimate rows are no longer all the first patch's"
        np.testing.assert_allclose(ours["penultimate"][0], penultimate[0], atol=1e-3, rtol=1e-4, err_msg=f"{name}: penultimate")
        np.testing.assert_allclose(ours["mean_pool"][0], theirs["mean_pool_patch0"], atol=1e-3, rtol=1e-4, err_msg=f"{name}: mean_pool")
        np.testing.assert_allclose(ours["max_pool"][0], theirs["max_pool_patch0"], atol=1e-3, rtol=1e-4, err_msg=f"{name}: max_pool")
        checked += 1
    assert checked == 12


def test_the_references_make_sense(reference: dict) -> None:
    """Before trusting the reference: a string orchestra is classical and strings to the MTT model, hip-hop is Hip-Hop to MSD."""

    def top(name: str, model: str, n: int = 3) -> list[str]:
        tags = np.array(reference["results"][name][musicnn.CHECKPOINTS[model]]["taggram"]).mean(axis=0)
        return [musicnn.TAGS[model][i] for i in np.argsort(-tags)[:n]]

    orchestra = "cc_excerpts/Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg"
    assert {"classical", "strings"} <= set(top(orchestra, "MTT")) and "violin" in top(orchestra, "MTT")
    hip_hop = ["fma_small_clips/fma_small/000/000002.mp3", "fma_small_clips/fma_small/000/000005.mp3", "fma_small_clips/fma_small/000/000676.mp3"]
    assert all(top(name, "MSD", 1) == ["Hip-Hop"] for name in hip_hop)


def test_a_clip_shorter_than_a_patch_is_repeated_to_fill_it(shared_data: Path, reference: dict, networks: dict) -> None:
    case = reference["short_input_padded_by_script"]
    samples, rate = read_audio(str(shared_data / case["file"]), WHOLE_FILE)
    at_16k = resample(samples, rate, musicnn.SAMPLE_RATE, musicnn.N_FFT)[: case["n_samples"]]
    spectrogram = musicnn.log_mel(at_16k)
    assert spectrogram.shape[0] == case["n_frames_unpadded"] < musicnn.PATCH_FRAMES
    patch = musicnn.patches(spectrogram)
    assert patch.shape == (1, musicnn.PATCH_FRAMES, musicnn.N_MELS)
    # The padding, bit for bit: the clip's frames, then the clip again from its start (np.pad's wrap, as the script pads).
    repeats = -(-musicnn.PATCH_FRAMES // spectrogram.shape[0])
    np.testing.assert_array_equal(patch[0], np.tile(spectrogram, (repeats, 1))[: musicnn.PATCH_FRAMES])
    # The script's padded patch is recorded as a SHA-256 of its bytes; the decoded OGG's samples now differ from those it
    # was recorded with in the last bits (the libraries decoding and resampling it moved on, 2026-12), so the bytes are
    # not compared: the tags below, against the script's own run of the original graph, check the patch to 1e-3.
    for model, network in networks.items():
        tags = musicnn.patch_layers(network, patch)["tags"][0]
        np.testing.assert_allclose(tags, case[musicnn.CHECKPOINTS[model]]["tags"], atol=1e-3, rtol=0)


def test_the_conversion_is_deterministic(tmp_path: Path) -> None:
    first = musicnn.converted_weights("MSD", tmp_path / "a")
    second = musicnn.converted_weights("MSD", tmp_path / "b")
    again = musicnn.converted_weights("MSD", tmp_path / "a")  # read back from the cache
    assert first.data == second.data == again.data
    assert hashlib.sha256(first.data).hexdigest() == hashlib.sha256(second.data).hexdigest()
    cached = list((tmp_path / "a" / "musicnn").iterdir())
    assert [p.name for p in cached] == [f"MSD_musicnn-{first.key[:16]}.safetensors"]


def test_a_missing_checkpoint_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "MSD_musicnn").mkdir()
    with pytest.raises(CheckpointError, match=r"MSD_musicnn/\.index: checkpoint file not found"):
        musicnn.converted_weights("MSD", tmp_path / "cache", root=tmp_path)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: data[: len(data) // 2], "cut short"),
        (lambda data: data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:], "fails its checksum"),
    ],
)
def test_a_corrupt_checkpoint_names_the_file(tmp_path: Path, damage, message: str) -> None:
    folder = tmp_path / "MSD_musicnn"
    shutil.copytree(musicnn.checkpoint_dir("MSD"), folder)
    data_file = folder / ".data-00000-of-00001"
    data_file.write_bytes(damage(data_file.read_bytes()))
    with pytest.raises(CheckpointError, match=rf"{data_file}: variable .* {message}"):
        musicnn.converted_weights("MSD", tmp_path / "cache", root=tmp_path)


def test_a_damaged_index_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "MSD_musicnn"
    shutil.copytree(musicnn.checkpoint_dir("MSD"), folder)
    index = folder / ".index"
    index.write_bytes(index.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match=rf"{index}: not a TensorFlow checkpoint index"):
        musicnn.converted_weights("MSD", tmp_path / "cache", root=tmp_path)


def test_a_clip_shorter_than_one_frame_is_a_clear_error(tmp_path: Path) -> None:
    import soundfile as sf

    path = tmp_path / "blip.wav"
    sf.write(path, np.random.default_rng(0).normal(0, 0.1, 700).astype(np.float32), 22050)  # 32 ms: one MFCC frame, not one musicnn frame at 16 kHz
    with pytest.raises(AudioError, match=r"too short: 0\.0\d+ s, fewer samples than one FFT frame \(musicnn needs 512 samples at 16000 Hz\)"):
        extract_file(str(path), AudioFeatureConfig(features=["mfcc", "musicnn"], n_fft=512))


def clip_tracks(fma_clips: Path, bad_audio: Path) -> pd.DataFrame:
    paths = [*sorted((fma_clips / "fma_small" / "000").glob("*.mp3"))[:3], bad_audio / "cut_short.mp3"]
    return pd.DataFrame({"track_id": [p.stem for p in paths], "path": [str(p) for p in paths], "label": None})


def test_musicnn_on_actors_gives_the_decoding_tasks_features(local_ray, fma_clips: Path, bad_audio: Path, tmp_path: Path) -> None:
    """The GPU path (the network on actors, fed the decoded patches) and the CPU path (in the decoding tasks) agree, here on the CPU."""
    from musicvae.data.features.extract import musicnn_weights, run_pipeline

    cfg = AudioFeatureConfig(features=["mfcc", "musicnn"], duration=6.0, musicnn={"models": ["MSD", "MTT"], "stats": "mean_std"})
    tracks = clip_tracks(fma_clips, bad_audio)
    weights = musicnn_weights(cfg, tmp_path)
    fused = run_pipeline(tracks, cfg, rows_per_block=2, weights=weights)
    actors = run_pipeline(tracks, cfg, rows_per_block=2, weights=weights, musicnn_actors=1)
    assert fused.track_ids == actors.track_ids == list(tracks["track_id"][:3])
    assert [s.track_id for s in fused.skipped] == [s.track_id for s in actors.skipped] == ["cut_short"]
    assert set(fused.arrays) == {"mfcc", "musicnn_msd", "musicnn_msd_tags", "musicnn_mtt", "musicnn_mtt_tags"}
    assert fused.arrays["musicnn_msd"].shape == (3, 2 * 753) and fused.arrays["musicnn_mtt_tags"].shape == (3, 50)
    for kind in fused.arrays:
        np.testing.assert_allclose(fused.arrays[kind], actors.arrays[kind], rtol=0, atol=1e-5, err_msg=kind)  # threads round apart
    # Each track's vector is its patches' layer pooled: mean then std, the network's own numbers.
    network = musicnn.load_network(weights["MSD"])
    layers = musicnn.patch_layers(network, our_patches_of(tracks["path"][0], cfg))
    np.testing.assert_allclose(fused.arrays["musicnn_msd"][0], musicnn.pool(layers["mean_pool"], "mean_std"), atol=1e-5)
    np.testing.assert_allclose(fused.arrays["musicnn_msd_tags"][0], layers["tags"].mean(axis=0), atol=1e-6)


def our_patches_of(path: str, cfg: AudioFeatureConfig) -> np.ndarray:
    patches = extract_file(path, cfg)[PATCHES]
    assert patches.shape == (2, musicnn.PATCH_FRAMES, musicnn.N_MELS)  # 6 s: two 3 s patches
    return patches


def test_a_missing_checkpoint_stops_extraction_before_any_file_is_decoded(local_ray, fma_clips: Path, bad_audio: Path, tmp_path: Path) -> None:
    from musicvae.data.features.extract import extract_features

    cfg = AudioFeatureConfig(features=["mfcc", "musicnn"], musicnn={"checkpoint_dir": str(tmp_path / "nowhere")})
    with pytest.raises(CheckpointError, match=r"nowhere/MSD_musicnn/\.index: checkpoint file not found"):
        extract_features(clip_tracks(fma_clips, bad_audio), cfg, tmp_path / "cache")
    assert not (tmp_path / "cache" / "features").exists()


def test_near_constant_columns_are_dropped_before_standardising() -> None:
    from musicvae.data.dataset import informative_columns

    rng = np.random.default_rng(0)
    real = rng.normal(0, 1, (500, 4))
    dead = np.full((500, 1), 0.3)
    rounding = 0.3 + rng.normal(0, 1e-8, (500, 1))  # a unit that never fires: its clip means differ in the last bits only
    rare = np.where(rng.random((500, 1)) < 0.1, rng.normal(0, 1, (500, 1)), 0.0)  # fires on a tenth of the tracks: a real feature
    kept = informative_columns(np.hstack([real, dead, rounding, rare]).astype(np.float32))
    assert kept.tolist() == [True, True, True, True, False, False, True]


def test_clusters_are_named_by_the_tags_most_above_their_collection_mean() -> None:
    from musicvae.reporting.report_html import cluster_tags

    tags = pd.DataFrame(
        {
            "track_id": ["a", "b", "c", "d"],
            "MSD: rock": [0.9, 0.8, 0.7, 0.8],  # everyone's: names no cluster
            "MSD: Hip-Hop": [0.6, 0.5, 0.0, 0.0],
            "MSD: jazz": [0.0, 0.1, 0.4, 0.3],
            "MTT: guitar": [0.1, 0.1, 0.5, 0.6],
        }
    )
    tracks = pd.DataFrame({"track_id": ["a", "b", "c", "d"], "cluster": [0, 0, 1, -1]})
    names = cluster_tags(tracks, tags, n=2)
    # Over the collection, noise included: rock 0.8, Hip-Hop 0.275, jazz 0.2, guitar 0.325. Only tags above it name a cluster.
    assert names == {0: "MSD: Hip-Hop, rock", 1: "MSD: jazz; MTT: guitar"}


@pytest.mark.slow
def test_a_sweep_compares_mfcc_and_musicnn_inputs_and_its_report_names_clusters_by_tags(
    tmp_path: Path, fma_clips: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real Ray Data extraction of real MP3s with musicnn, a real Tune sweep over two inputs, MLflow, and the report."""
    from mlflow.tracking import MlflowClient

    from musicvae.config.sweep_file import parse_sweep
    from musicvae.reporting.report import write_report
    from musicvae.tune.sweep import run_sweep

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    labels = pd.read_csv(fma_clips / "labels.csv")
    labels["path"] = [str(fma_clips / "fma_small" / "000" / f"{t:06d}.mp3") for t in labels["track_id"]]
    labels.to_csv(tmp_path / "clips.csv", index=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    raw = {
        "name": "clips",
        "data": {
            "source": {"kind": "manifest", "path": str(tmp_path / "clips.csv"), "label_column": "genre", "id_column": "track_id", "text_columns": []},
            "audio": {"features": ["mfcc", "musicnn"], "duration": 6.0, "n_mfcc": 20, "stats": "mean_std", "musicnn": {"models": ["MSD"]}},
            "cache_dir": str(tmp_path / "cache"),
        },
        "space": {"input": ["mfcc", "musicnn_msd"], "model": ["raw", "pca"], "latent_dim": 4, "clusterer": "kmeans", "seed": [0, 1], "n_clusters": 2},
        "search": {"metric": "input_silhouette", "sampler": "grid", "max_concurrent_trials": 2},
        "trials": {"figures": [], "after_sweep_projections": False},
        "tracking": {"uri": uri, "experiment": "clips"},
        "storage_path": str(tmp_path / "ray_results"),
    }
    outcome = run_sweep(parse_sweep(raw))
    table = outcome.leaderboard
    assert len(table) == 8 and (table["status"] == "OK").all()
    assert set(table["input"]) == {"mfcc", "musicnn_msd"}
    assert set(outcome.methods["method"]) == {f"{m} (input={i}) + kmeans" for m in ("raw", "pca") for i in ("mfcc", "musicnn_msd")}
    client = MlflowClient(uri)
    assert {a.path for a in client.list_artifacts(outcome.parent_run_id)} >= {"tracks.parquet", "tags.parquet"}
    run = next(r for r in client.search_runs([outcome.experiment_id]) if r.data.params.get("input") == "musicnn_msd")
    assert run.data.params["model"] in ("raw", "pca")  # the input is a recorded parameter of the trial

    written = write_report(uri, "clips", ["clips"], tmp_path / "reports")
    markdown = (tmp_path / "reports" / "clips" / "methods.md").read_text()
    assert "## Clusters, named by musicnn's tags" in markdown
    assert "Last.fm tags of the Million Song Dataset" in markdown and "not from this one's labels" in markdown
    named = [line for line in markdown.splitlines() if line.startswith("- cluster ")]
    assert len(named) >= 2 and all("MSD: " in line for line in named)
    page = next(path for path in written if path.name == "report.html").read_text()
    assert "class='tags'>MSD: " in page

    # The same files again: every feature from the store, nothing decoded.
    from musicvae.data.dataset import load_feature_set

    again = load_feature_set(parse_sweep(raw).data)
    assert "from cache" in again.summary
    assert again.vectors["musicnn_msd"].shape[0] == 10 and set(again.tags) == {"MSD"}
