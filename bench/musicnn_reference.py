"""Reference outputs of the original TensorFlow ``musicnn`` package, for testing a PyTorch port without TensorFlow.

NOT run by CI or by the test suite: it needs TensorFlow and the original ``musicnn`` package, which the
project does not depend on. It is meant to be run ONCE, by hand, in a scratch virtual environment outside
the repository, and its output file is committed:

    python3 -m venv /tmp/tfref
    /tmp/tfref/bin/pip install "tensorflow-cpu==2.15.1" "librosa==0.11.0" "soundfile==0.14.0" "soxr==1.1.0"
    /tmp/tfref/bin/pip install --no-deps musicnn==0.1.0   # its metadata pins numpy<1.17, hence --no-deps
    cd <repo root>
    /tmp/tfref/bin/python bench/musicnn_reference.py [--data ../shared/data] [--out tests/data/musicnn_reference.json]
                                                     [--debug-dir /tmp/musicnn_debug]

(TensorFlow 2.15 pulls numpy 1.26; librosa/soundfile/soxr must be the versions of the project's .venv so that
decoding and resampling are identical.)

Writes ``tests/data/musicnn_reference.json`` (relative to the repo root): for each of ten fma_small MP3 clips
and two Creative Commons excerpts, and for each of MTT_musicnn and MSD_musicnn, the taggram (one row of 50
sigmoid outputs per 3 s patch, non-overlapping), the 200-d ``penultimate`` features per patch, and the 753-d
``mean_pool`` / ``max_pool`` of the first patch, all as returned by ``musicnn.extractor.extractor(path, model=M,
input_length=3, input_overlap=False, extract_features=True)``, i.e. the original package's own preprocessing
and graph. Values are rounded to 7 significant digits. ``cnn1``/``cnn2``/``cnn3`` are not stored: the
original extractor re-appends the first batch's values for every later patch (a bug in musicnn 0.1.0).

It also stores one case the original extractor cannot handle (it crashes on clips shorter than one 187-frame
patch): the first 1.5 s of a trumpet excerpt, log-mel computed exactly as ``musicnn.extractor.batch_data``
does, repeat-padded BY THIS SCRIPT (``np.pad(..., mode="wrap")`` at the end, along time) to 187 frames and run
through the original graph (``models.define_model`` under ``tf.name_scope('model')``, checkpoint restored with
``tf.compat.v1.train.Saver``, is_training False).

With ``--debug-dir DIR`` it also saves (not for committing) DIR/<model>_activations.npz, every intermediate
activation of the graph for the first patch of 000002.mp3, and DIR/<model>_variables.npz / _variables.txt,
every checkpoint variable (npz keys: variable names with '/' replaced by '__').

Note on numpy: musicnn computes ``np.log10(10000 * x + 1)`` on a float16 array. Under numpy 1.x (which the
original ran with) value-based casting makes ``10000 * x`` float32; under numpy >= 2 (NEP 50) it stays float16
and overflows to inf wherever the mel power exceeds ~6.55. A port must compute
``np.log10(10000 * x.astype(np.float16).astype(np.float32) + 1)`` to match these references.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import numpy as np
from _common import ROOT  # noqa: E402

MODELS = ("MTT_musicnn", "MSD_musicnn")
FMA_GLOB = "fma_small_clips/fma_small/000/*.mp3"
CC_FILES = (
    "cc_excerpts/Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg",
    "cc_excerpts/Kevin_MacLeod_-_Vibe_Ace.ogg",
)
SHORT_FILE = "cc_excerpts/sorohanro_-_solo-trumpet-06.ogg"
SHORT_SECONDS = 1.5
DEBUG_FILE = "fma_small_clips/fma_small/000/000002.mp3"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_array(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


def r7(a) -> list | float:
    """Nested lists of floats rounded to 7 significant digits."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return float(f"{a:.7g}")
    return [r7(v) for v in a] if a.ndim > 1 else [float(f"{v:.7g}") for v in a]


def musicnn_logmel(y: np.ndarray, config) -> np.ndarray:
    """The log-mel of musicnn.extractor.batch_data, from already-loaded 16 kHz audio (numpy 1.x semantics)."""
    import librosa

    rep = librosa.feature.melspectrogram(y=y, sr=config.SR, hop_length=config.FFT_HOP, n_fft=config.FFT_SIZE, n_mels=config.N_MELS).T
    rep = rep.astype(np.float16)
    return np.log10(10000 * rep + 1)  # float32 under numpy 1.x value-based casting (see the module docstring)


def build_graph(tf, models, model: str, n_frames: int, n_mels: int, num_classes: int):
    """The graph exactly as musicnn.extractor.extractor builds it, in a fresh tf.Graph, with the checkpoint restored."""
    graph = tf.Graph()
    with graph.as_default():
        with tf.name_scope("model"):
            x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, n_mels])
            is_training = tf.compat.v1.placeholder(tf.bool)
            y, timbral, temporal, cnn1, cnn2, cnn3, mean_pool, max_pool, penultimate = models.define_model(x, is_training, model, num_classes)
            normalized_y = tf.nn.sigmoid(y)
        sess = tf.compat.v1.Session(graph=graph)
        sess.run(tf.compat.v1.global_variables_initializer())
        saver = tf.compat.v1.train.Saver()
        # No try/except here (the original swallows restore errors and silently runs random weights).
        saver.restore(sess, os.path.dirname(models.__file__) + "/" + model + "/")
    named = {
        "logits": y,
        "sigmoid": normalized_y,
        "bn_conv1_t": cnn1,
        "res_conv2": cnn2,
        "res_conv3": cnn3,
        "mean_pool": mean_pool,
        "max_pool": max_pool,
        "penultimate_bn_dense": penultimate,
        "timbral": timbral,
        "temporal": temporal,
    }
    by_name = {
        "bn_input": "model/batch_normalization/cond/Identity:0",
        "f74": "model/Squeeze:0",
        "f77": "model/Squeeze_1:0",
        "s1": "model/Squeeze_2:0",
        "s2": "model/Squeeze_3:0",
        "s3": "model/Squeeze_4:0",
        "frontend_concat": "model/concat:0",
        "midend_concat": "model/concat_1:0",
        "tmp_pool_max_mean": "model/concat_2:0",
        "flat_pool_bn": "model/batch_normalization_9/batchnorm/add_1:0",
        "dense_relu": "model/dense/Relu:0",
    }
    for k, name in by_name.items():
        named[k] = graph.get_tensor_by_name(name)
    return sess, x, is_training, named


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data", help="data folder (relative paths are taken from the repo root)")
    ap.add_argument("--out", default="tests/data/musicnn_reference.json", help="output JSON (relative to the repo root)")
    ap.add_argument("--debug-dir", default=None, help="also save intermediate activations and checkpoint variables here")
    args = ap.parse_args()

    data = (ROOT / args.data).resolve()
    out = ROOT / args.out

    import librosa
    import soundfile
    import soxr
    import tensorflow as tf
    from musicnn import configuration as config
    from musicnn import extractor, models  # extractor disables eager execution on import

    files = sorted(p.relative_to(data).as_posix() for p in data.glob(FMA_GLOB)) + list(CC_FILES)
    if len(files) != 12:
        raise SystemExit(f"expected 10 FMA clips + 2 CC excerpts under {data}, found {files}")
    labels = {"MTT_musicnn": list(config.MTT_LABELS), "MSD_musicnn": list(config.MSD_LABELS)}
    n_frames = librosa.time_to_frames(3, sr=config.SR, n_fft=config.FFT_SIZE, hop_length=config.FFT_HOP) + 1  # as the extractor
    pkg_dir = Path(models.__file__).parent

    ref: dict = {
        "format": 1,
        "description": (
            "Outputs of the original TensorFlow musicnn 0.1.0 package (bench/musicnn_reference.py). results[file][model]: "
            "taggram (patches x 50 sigmoid), penultimate (patches x 200, bn_dense), mean_pool_patch0 / max_pool_patch0 (753) "
            "from musicnn.extractor.extractor(path, model, input_length=3, input_overlap=False, extract_features=True); "
            "non-overlapping 187-frame patches, batch size 1, trailing frames that do not fill a patch are dropped. "
            "logmel_sha256: sha256 of the float32 log-mel (frames x 96, C order) returned by extractor.batch_data. "
            "Floats rounded to 7 significant digits."
        ),
        "notes": [
            "cnn1/cnn2/cnn3 are not stored: musicnn 0.1.0's extractor concatenates the first batch's values for every later patch.",
            "musicnn computes np.log10(10000 * x + 1) on float16 x; under numpy 1.x (used here) the product is float32. "
            "Under numpy >= 2 it stays float16 and overflows to inf: cast x.astype(np.float16).astype(np.float32) first.",
            "The graph was also rebuilt by this script with a checked checkpoint restore and compared with the extractor's first patch.",
        ],
        "settings": {
            "sr": config.SR,
            "n_fft": config.FFT_SIZE,
            "hop_length": config.FFT_HOP,
            "n_mels": config.N_MELS,
            "n_frames": int(n_frames),
            "input_length_s": 3,
            "input_overlap": False,
            "batch_size": config.BATCH_SIZE,
        },
        "versions": {
            "python": sys.version.split()[0],
            "tensorflow": tf.__version__,
            "musicnn": version("musicnn"),
            "numpy": np.__version__,
            "librosa": librosa.__version__,
            "soundfile": soundfile.__version__,
            "libsndfile": soundfile.__libsndfile_version__,
            "soxr": soxr.__version__,
            "scipy": version("scipy"),
        },
        "models": {
            m: {
                "labels": labels[m],
                "checkpoint_sha256": {name: sha256_file(pkg_dir / m / name) for name in (".data-00000-of-00001", ".index")},
            }
            for m in MODELS
        },
        "audio_sha256": {f: sha256_file(data / f) for f in files + [SHORT_FILE]},
        "results": {},
    }

    # 1. The original extractor, file by file.
    for f in files:
        entry: dict = {}
        _, spectrogram = extractor.batch_data(str(data / f), n_frames, n_frames)
        entry["logmel_shape"] = list(spectrogram.shape)
        entry["logmel_sha256"] = sha256_array(spectrogram)
        for m in MODELS:
            taggram, tags, feats = extractor.extractor(str(data / f), model=m, input_length=3, input_overlap=False, extract_features=True)
            assert list(tags) == labels[m]
            assert taggram.shape == (spectrogram.shape[0] // n_frames, len(tags)), taggram.shape
            entry[m] = {
                "n_patches": int(taggram.shape[0]),
                "taggram": r7(taggram),
                "penultimate": r7(feats["penultimate"]),
                "mean_pool_patch0": r7(feats["mean_pool"][0]),
                "max_pool_patch0": r7(feats["max_pool"][0]),
            }
            for k, v in (("taggram", taggram), ("penultimate", feats["penultimate"]), ("mean_pool", feats["mean_pool"]), ("max_pool", feats["max_pool"])):
                if not np.all(np.isfinite(v)):
                    raise SystemExit(f"non-finite {k} for {f} / {m}")
        ref["results"][f] = entry

    # 2. Own graph build (checked restore): cross-check, the short padded input, debug dumps.
    y_short, _ = librosa.load(str(data / SHORT_FILE), sr=config.SR)  # as batch_data loads
    full_seconds = len(y_short) / config.SR
    if len(y_short) >= 3 * config.SR:
        y_short = y_short[: int(SHORT_SECONDS * config.SR)]
    short_logmel = musicnn_logmel(y_short, config)
    n_short = short_logmel.shape[0]
    assert n_short < n_frames
    short_patch = np.pad(short_logmel, ((0, n_frames - n_short), (0, 0)), mode="wrap").astype(np.float32)
    ref["short_input_padded_by_script"] = {
        "file": SHORT_FILE,
        "note": (
            "Input padded by bench/musicnn_reference.py, NOT by musicnn (whose extractor crashes on clips shorter than one patch). "
            "y = librosa.load(path, sr=16000)[0]; if len(y) >= 3 s: y = y[:int(1.5 * 16000)]; log-mel exactly as extractor.batch_data "
            "(melspectrogram n_fft 512, hop 256, n_mels 96, .astype(np.float16), np.log10(10000*x+1) with numpy 1.x float32 result); "
            "patch = np.pad(logmel, ((0, 187 - n), (0, 0)), mode='wrap'); run once through the original graph, is_training False."
        ),
        "file_seconds": round(full_seconds, 6),
        "n_samples": int(len(y_short)),
        "n_frames_unpadded": int(n_short),
        "padded_patch_sha256": sha256_array(short_patch),
    }

    first_patch = extractor.batch_data(str(data / DEBUG_FILE), n_frames, n_frames)[0][:1].astype(np.float32)
    if args.debug_dir:
        Path(args.debug_dir).mkdir(parents=True, exist_ok=True)
    for m in MODELS:
        sess, x, is_training, named = build_graph(tf, models, m, n_frames, config.N_MELS, len(labels[m]))
        acts = sess.run(named, feed_dict={x: first_patch, is_training: False})
        extractor_row = np.asarray(ref["results"][DEBUG_FILE][m]["taggram"][0])
        diff = float(np.max(np.abs(acts["sigmoid"][0] - extractor_row)))
        print(f"[check] {m}: own graph vs extractor, first patch of {DEBUG_FILE}: max |diff| = {diff:.2e}")
        if diff > 1e-6:
            raise SystemExit(f"own graph does not reproduce the extractor for {m}")
        expected = {"f74": (1, n_frames, 204), "f77": (1, n_frames, 204), "s1": (1, n_frames, 51), "s2": (1, n_frames, 51), "s3": (1, n_frames, 51)}
        for k, shape in expected.items():
            assert acts[k].shape == shape, (k, acts[k].shape)
        short = sess.run(named, feed_dict={x: short_patch[None], is_training: False})
        for k in ("sigmoid", "penultimate_bn_dense"):
            if not np.all(np.isfinite(short[k])):
                raise SystemExit(f"non-finite {k} for the short input / {m}")
        ref["short_input_padded_by_script"][m] = {"tags": r7(short["sigmoid"][0]), "penultimate": r7(short["penultimate_bn_dense"][0])}
        sess.close()

        if args.debug_dir:
            dbg = Path(args.debug_dir)
            arrays = {"input_patch": first_patch[0]}
            arrays.update({k: np.squeeze(v, axis=0) for k, v in acts.items()})
            np.savez(dbg / f"{m}_activations.npz", **arrays)
            reader = tf.compat.v1.train.NewCheckpointReader(str(pkg_dir / m) + "/")  # tf.train.load_checkpoint rejects the folder
            shapes = reader.get_variable_to_shape_map()
            dtypes = reader.get_variable_to_dtype_map()
            np.savez(dbg / f"{m}_variables.npz", **{k.replace("/", "__"): reader.get_tensor(k) for k in sorted(shapes)})
            (dbg / f"{m}_variables.txt").write_text("".join(f"{k}\t{shapes[k]}\t{dtypes[k].name}\n" for k in sorted(shapes)))
            (dbg / f"{m}_activations.txt").write_text("".join(f"{k}\t{list(v.shape)}\n" for k, v in arrays.items()))

    # 3. Sanity report.
    for m in MODELS:
        tops = []
        for f in files:
            mean = np.asarray(ref["results"][f][m]["taggram"]).mean(axis=0)
            order = np.argsort(-mean)[:5]
            tops.append(labels[m][order[0]])
            print(f"{m:12s} {f:90s} " + ", ".join(f"{labels[m][i]} {mean[i]:.3f}" for i in order))
        tag, count = Counter(tops).most_common(1)[0]
        print(f"{m}: most common top tag {tag!r} for {count}/{len(files)} files")
        if count > 0.75 * len(files):
            print(f"WARNING: {m} gives the same top tag for nearly all files (broken setup?)")
        s = ref["short_input_padded_by_script"][m]["tags"]
        print(f"{m:12s} short padded input: " + ", ".join(f"{labels[m][i]} {s[i]:.3f}" for i in np.argsort(s)[::-1][:5]))

    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(ref, separators=(",", ":"), allow_nan=False)
    out.write_text(text + "\n")
    print(f"wrote {out} ({len(text) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
