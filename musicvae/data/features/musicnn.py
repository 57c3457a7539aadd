"""musicnn, a music audio tagger pretrained on music, in PyTorch: a representation that hears music.

Pons & Serra, "musicnn: pre-trained convolutional neural networks for music
audio tagging" (ISMIR 2019 late-breaking demo), after Pons et al., "End-to-end
learning for music audio tagging at scale" (ISMIR 2018). Its three parts:

* front end, musically motivated filters over a log-mel patch (187 frames x 96
  bands, 3 s): *timbral* filters tall in frequency (7 frames x 38 and x 67 bands,
  204 each) and *temporal* filters long in time (128, 64 and 32 frames x 1 band,
  51 each), every map max-pooled over frequency: 561 features per frame;
* mid end, three 1-D convolutions over time (64 filters of 7 frames), the last
  two residual, densely connected: the front end's and each layer's features
  side by side, 753 per frame;
* back end, temporal pooling (max and mean over the patch's frames, 2 x 753),
  a dense layer of 200 units (the *penultimate* features) and the 50 tag logits.

Every convolution and dense layer is followed by batch normalisation (after
the ReLU, as the original). Weights come from the TensorFlow checkpoints that
the ``musicnn`` package on PyPI ships (the MagnaTagATune model ``MTT`` and the
Million Song Dataset model ``MSD``), read without TensorFlow
(:mod:`musicvae.data.features.tf_checkpoint`) and converted once into a
safetensors file under the cache dir, keyed by the checkpoint's hash.

A track becomes a vector: its log-mel spectrogram cut into non-overlapping 3 s
patches (a clip shorter than one patch is repeated to fill it, as musicnn was
trained), each patch through the network, and one layer pooled over the
patches (mean, and std with ``stats: mean_std``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from musicvae.data.features.tf_checkpoint import CheckpointError, read_checkpoint

SAMPLE_RATE = 16000
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
PATCH_FRAMES = 187  # 3 s: librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1, as musicnn computes it

# The checkpoints' folders in the musicnn package, and each model's tags in output order (musicnn/configuration.py).
CHECKPOINTS = {"MSD": "MSD_musicnn", "MTT": "MTT_musicnn"}
TAGS = {
    "MTT": (
        "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano", "ambient", "beat", "violin",
        "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute",
        "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance",
        "male voice", "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
    ),
    "MSD": (
        "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock", "jazz", "beautiful",
        "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
        "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop",
        "70s", "party", "country", "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb",
        "indie pop", "sad", "House", "happy",
    ),
}  # fmt: skip
# What each model's tags are, for the report: the vocabulary was learnt on another collection's tags, never the user's labels.
TAG_SOURCES = {
    "MSD": "the 50 most frequent Last.fm tags of the Million Song Dataset (genres, decades, moods, voices)",
    "MTT": "the 50 most frequent MagnaTagATune tags (instruments, voices, moods, a few genres)",
}
LAYERS = {"tags": 50, "penultimate": 200, "mean_pool": 753, "max_pool": 753}  # a layer's size per patch
BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default (PyTorch's is 1e-5)


# --------------------------------------------------------------------------- preprocessing


def log_mel(samples: np.ndarray) -> np.ndarray:
    """musicnn's input: (frames, 96) log-compressed mel power of 16 kHz mono samples.

    The power spectrogram is rounded to float16 before ``log10(10000 x + 1)``
    because musicnn's own preprocessing does so (``extractor.batch_data``), and
    the network was trained on those values. The product is taken in float32,
    as numpy < 2 took it there: under numpy 2's promotion rules (NEP 50)
    ``10000 * float16`` stays float16 and overflows to inf above 6.55 (about 1 %
    of a pop song's bins), which is what breaks musicnn's own code on numpy 2.
    """
    import librosa

    mel = librosa.feature.melspectrogram(y=samples, sr=SAMPLE_RATE, hop_length=HOP_LENGTH, n_fft=N_FFT, n_mels=N_MELS).T
    return np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)


def patches(spectrogram: np.ndarray) -> np.ndarray:
    """(n, 187, 96): consecutive non-overlapping 3 s patches, the remainder dropped (as musicnn's extractor);
    a clip shorter than one patch is repeated to fill it (``repeat-pad``, as musicnn was trained)."""
    frames = spectrogram.shape[0]
    if frames < PATCH_FRAMES:
        return np.pad(spectrogram, ((0, PATCH_FRAMES - frames), (0, 0)), mode="wrap")[None]
    n = frames // PATCH_FRAMES
    return spectrogram[: n * PATCH_FRAMES].reshape(n, PATCH_FRAMES, N_MELS)


# --------------------------------------------------------------------------- the network


def _bn(size: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(size, eps=BN_EPSILON)


class Musicnn(nn.Module):
    """The musicnn network: (batch, 187, 96) log-mel patches in, every layer a track vector can be made of out."""

    def __init__(self, n_tags: int = 50, midend_filters: int = 64, backend_units: int = 200) -> None:
        super().__init__()
        self.input_bn = nn.BatchNorm2d(1, eps=BN_EPSILON)
        # Front end. Timbral: 7 frames x 40 % and 70 % of the bands; temporal: 128, 64, 32 frames x 1 band.
        self.timbral = nn.ModuleList([nn.Conv2d(1, 204, (7, int(share * N_MELS))) for share in (0.4, 0.7)])
        self.temporal = nn.ModuleList([nn.Conv2d(1, 51, (length, 1)) for length in (128, 64, 32)])
        self.frontend_bn = nn.ModuleList([nn.BatchNorm2d(n, eps=BN_EPSILON) for n in (204, 204, 51, 51, 51)])
        frontend_size = 2 * 204 + 3 * 51
        # Mid end: each convolution spans all features of 7 frames.
        self.midend = nn.ModuleList([nn.Conv1d(n, midend_filters, 7, padding=3) for n in (frontend_size, midend_filters, midend_filters)])
        self.midend_bn = nn.ModuleList([_bn(midend_filters) for _ in range(3)])
        pooled = frontend_size + 3 * midend_filters
        # Back end.
        self.pool_bn = _bn(2 * pooled)
        self.dense = nn.Linear(2 * pooled, backend_units)
        self.dense_bn = _bn(backend_units)
        self.out = nn.Linear(backend_units, n_tags)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x``: (batch, 187 frames, 96 bands). Returns each layer of :data:`LAYERS` per patch."""
        x = self.input_bn(x.unsqueeze(1))  # (batch, 1, frames, bands)
        branches = []
        for conv, bn in zip([*self.timbral, *self.temporal], self.frontend_bn):
            length = conv.kernel_size[0]
            # Timbral filters: 3 frames of zeros each side ('valid' in frequency). Temporal: TensorFlow's 'same', which
            # puts the odd frame of an even kernel's padding after the signal.
            padded = F.pad(x, (0, 0, (length - 1) // 2, length // 2))
            branches.append(bn(F.relu(conv(padded))).amax(dim=3))  # max over frequency: (batch, filters, frames)
        features = [torch.cat(branches, dim=1)]
        h = features[0]
        for i, (conv, bn) in enumerate(zip(self.midend, self.midend_bn)):
            h = bn(F.relu(conv(h))) + (h if i > 0 else 0)
            features.append(h)
        frames = torch.cat(features, dim=1)  # (batch, 753, frames)
        max_pool, mean_pool = frames.amax(dim=2), frames.mean(dim=2)
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)  # TensorFlow's order: each feature's max, then its mean
        penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))
        tags = torch.sigmoid(self.out(penultimate))
        return {"tags": tags, "penultimate": penultimate, "mean_pool": mean_pool, "max_pool": max_pool}


# --------------------------------------------------------------------------- weights


def checkpoint_dir(model: str, root: str | Path | None = None) -> Path:
    """The folder of ``model``'s checkpoint: under ``root`` if given, else inside the installed musicnn package."""
    if root is not None:
        return Path(root).expanduser() / CHECKPOINTS[model]
    spec = importlib.util.find_spec("musicnn")  # found, not imported: its modules import TensorFlow
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            "musicnn's weights are not installed: they ship in the musicnn package, installed without its dependencies "
            "(`pip install --no-deps musicnn==0.1.0`; `make install` does it), or set data.audio.musicnn.checkpoint_dir"
        )
    return Path(next(iter(spec.submodule_search_locations))) / CHECKPOINTS[model]


def _prefix(folder: Path) -> str:
    """musicnn's checkpoints are named by their folder alone (``MSD_musicnn/.index``): the prefix is the folder plus '/'."""
    return f"{folder}{os.sep}"


def checkpoint_hash(folder: Path) -> str:
    """sha256 over the checkpoint's index and data files: the key of its converted weights."""
    digest = hashlib.sha256()
    for suffix in (".index", ".data-00000-of-00001"):
        path = Path(_prefix(folder) + suffix)
        if not path.is_file():
            raise CheckpointError(f"{path}: checkpoint file not found")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def state_dict_from_checkpoint(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The network's weights from the checkpoint's variables (TensorFlow's layer names, in the order musicnn creates them).

    TensorFlow stores a 2-D convolution's kernel as (height, width, in, out) and
    a dense one as (in, out); PyTorch wants (out, in, height, width) and (out, in).
    The mid end's convolutions span all features of a frame, so they are 1-D here.
    """
    state: dict[str, np.ndarray] = {}

    def bn(name: str, tf_name: str) -> None:
        for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"), ("running_var", "moving_variance")):
            state[f"{name}.{ours}"] = variables[f"{tf_name}/{theirs}"]

    def conv(name: str, tf_name: str, one_d: bool = False) -> None:
        kernel = variables[f"{tf_name}/kernel"]
        state[f"{name}.weight"] = kernel[:, :, 0, :].transpose(2, 1, 0) if one_d else kernel.transpose(3, 2, 0, 1)
        state[f"{name}.bias"] = variables[f"{tf_name}/bias"]

    try:
        bn("input_bn", "batch_normalization")
        for i, name in enumerate(["timbral.0", "timbral.1", "temporal.0", "temporal.1", "temporal.2"]):
            conv(name, f"conv2d{_suffix(i)}")
            bn(f"frontend_bn.{i}", f"batch_normalization_{i + 1}")
        for i in range(3):
            conv(f"midend.{i}", f"conv2d_{i + 5}", one_d=True)
            bn(f"midend_bn.{i}", f"batch_normalization_{i + 6}")
        bn("pool_bn", "batch_normalization_9")
        state["dense.weight"], state["dense.bias"] = variables["dense/kernel"].T, variables["dense/bias"]
        bn("dense_bn", "batch_normalization_10")
        state["out.weight"], state["out.bias"] = variables["dense_1/kernel"].T, variables["dense_1/bias"]
    except KeyError as exc:
        raise CheckpointError(f"not a musicnn checkpoint: variable {exc.args[0]} is missing") from None
    return {name: torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)) for name, value in state.items()}


def _suffix(i: int) -> str:
    return f"_{i}" if i else ""


@dataclass(frozen=True)
class Weights:
    """One model's converted weights: the safetensors bytes (shipped to Ray workers as they are) and the checkpoint's hash."""

    model: str
    key: str = field(repr=True)
    data: bytes = field(repr=False)


def converted_weights(model: str, cache_dir: str | Path, root: str | Path | None = None) -> Weights:
    """``model``'s weights as safetensors, converted from its checkpoint on first use and cached under ``cache_dir/musicnn``.

    Keyed by the checkpoint's hash, so a changed checkpoint is converted again,
    and deterministic: the same checkpoint gives the same bytes. The cache may
    be a plain path or a URI; a file is written whole before it appears.
    """
    from safetensors.torch import save

    from musicvae.data.locations import join, resolve

    folder = checkpoint_dir(model, root)
    key = checkpoint_hash(folder)
    fs, path = resolve(join(cache_dir, "musicnn", f"{CHECKPOINTS[model]}-{key[:16]}.safetensors"))
    try:
        with fs.open_input_stream(path) as file:
            return Weights(model, key, file.read())
    except (FileNotFoundError, OSError):
        pass
    state = state_dict_from_checkpoint(read_checkpoint(_prefix(folder)))
    try:
        Musicnn(n_tags=len(TAGS[model])).load_state_dict(state, strict=True)  # every weight has its place and its shape
    except RuntimeError as exc:
        raise CheckpointError(f"{folder}: the checkpoint does not fit musicnn's architecture: {str(exc).splitlines()[-1].strip()}") from None
    # One metadata key: safetensors writes a metadata map in hash order, so two keys would make the bytes vary from run to run.
    data = save(state, metadata={"converted_from": f"{CHECKPOINTS[model]} sha256:{key}"})
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    partial = f"{path}.{os.getpid()}.part"
    with fs.open_output_stream(partial) as file:
        file.write(data)
    fs.move(partial, path)
    return Weights(model, key, data)


def load_network(weights: Weights, device: str | torch.device = "cpu") -> Musicnn:
    """The network in inference mode (batch normalisation from its stored statistics, no dropout), on ``device``."""
    from safetensors.torch import load

    network = Musicnn(n_tags=len(TAGS[weights.model]))
    network.load_state_dict(load(weights.data), strict=True)
    return network.eval().to(device)


# --------------------------------------------------------------------------- tracks to vectors


@torch.no_grad()
def patch_layers(network: Musicnn, batch: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Every layer of every patch: (n_patches, size) per layer, ``batch_size`` patches through the network at a time."""
    device = next(network.parameters()).device
    outputs: dict[str, list[np.ndarray]] = {layer: [] for layer in LAYERS}
    for start in range(0, len(batch), batch_size):
        layers = network(torch.as_tensor(batch[start : start + batch_size], device=device))
        for layer, values in layers.items():
            outputs[layer].append(values.float().cpu().numpy())
    return {layer: np.concatenate(values) if values else np.empty((0, LAYERS[layer]), np.float32) for layer, values in outputs.items()}


def pool(values: np.ndarray, stats: str) -> np.ndarray:
    """One track's vector from its patches' values: their mean, and their std with ``mean_std``."""
    parts = [values.mean(axis=0)] + ([values.std(axis=0)] if stats == "mean_std" else [])
    return np.concatenate(parts).astype(np.float32)
