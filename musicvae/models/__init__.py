"""Embedding models: the baselines (raw features, PCA) and the neural family.

:func:`build_model` turns a trial's parameters and the shapes of its inputs
into a torch module; every neural model has ``encode(batch)``,
``forward(batch) -> Output`` and ``reconstruction(batch, out)`` (see
:mod:`musicvae.models.vae`), so one training loop serves them all.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from musicvae.config.params import TrialParams
from musicvae.models.conv_vae import ConvVAE
from musicvae.models.multimodal_vae import MultimodalVAE
from musicvae.models.vade import VaDE
from musicvae.models.vae import MLPVAE


def build_model(params: TrialParams, inputs: dict[str, np.ndarray], n_components: int | None = None) -> nn.Module:
    """The network for ``params.model``, sized from the arrays it will be trained on (VaDE: a prior of ``n_components``)."""
    if params.model == "vade":
        if n_components is None:
            raise ValueError("vade needs the number of mixture components: set n_clusters, or give the data labels")
        audio = params.model_copy(update={"model": "conv_vae" if params.uses_spectrogram else "vae"})
        return VaDE(build_model(audio, inputs), params.latent_dim, n_components, params.vade_pretrain_epochs)
    if params.model in ("vae", "ae"):
        return MLPVAE(inputs["features"].shape[1], params.latent_dim, params.hidden_dim, deterministic=params.model == "ae")
    if params.model == "conv_vae":
        return ConvVAE(inputs["spectrogram"].shape[1:], params.latent_dim, params.channels)
    if params.model == "multimodal_vae":
        audio = {"spectrogram_shape": inputs["spectrogram"].shape[1:]} if params.uses_spectrogram else {"n_features": inputs["features"].shape[1]}
        return MultimodalVAE(
            text_dim=inputs["text"].shape[1],
            latent_dim=params.latent_dim,
            hidden_dim=params.hidden_dim,
            channels=params.channels,
            audio_weight=params.audio_weight,
            text_weight=params.text_weight,
            **audio,
        )
    raise ValueError(f"'{params.model}' is not a neural model")
