"""The multimodal VAE: audio and text fused into one latent by a product of experts.

Each modality has its own encoder, giving a Gaussian "opinion" about z; the
posterior is their product with the N(0, I) prior (Wu & Goodman, 2018,
MVAE): precisions add, means are precision-weighted. A track without text
simply has no text expert (``text_mask`` = 0), so missing text is handled
by the model rather than faked with a zero vector. Both modalities are
decoded from the shared z.

Weighting. The audio term is the MLP/conv VAE's own reconstruction (summed
squared error), so β means what it means for those models. The text term
is rescaled to the audio's number of values before ``text_weight``: with
384 text values against 40 MFCCs, an unscaled sum would let the text
dominate the latent, and weights of 1 and 1 now mean "both modalities count
equally per track".

Training uses MVAE's sub-sampled ELBO: besides the joint ELBO, the ELBO of
each expert alone (audio only, text only, each reconstructing its own
modality). Without them the joint posterior may lean on one expert and the
other never learns to place a track by itself; :func:`~musicvae.models.vae.elbo`
adds the terms of :meth:`MultimodalVAE.subsets`. A subset's batch holds only
its modality, and a modality absent from a batch is neither encoded nor
decoded: its expert and its error would only be multiplied by zero. That
is a third less work per step than masking it out, with the same numbers to
the bit (an exact zero added changes no sum; ``tests/test_models.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from musicvae.models.conv_vae import ConvDecoder, ConvEncoder
from musicvae.models.vae import Batch, GaussianHead, Output, mlp_decoder, mlp_encoder, sample, squared_error


def product_of_experts(mus: list[torch.Tensor], logvars: list[torch.Tensor], masks: list[torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian experts multiplied with a N(0, I) prior; a mask of 0 removes that expert for that track (None: every track has it)."""
    precision = torch.ones_like(mus[0])  # the prior's
    weighted_mean = torch.zeros_like(mus[0])
    for mu, logvar, mask in zip(mus, logvars, masks):
        expert_precision = torch.exp(-logvar) if mask is None else torch.exp(-logvar) * mask
        precision = precision + expert_precision
        weighted_mean = weighted_mean + mu * expert_precision
    return weighted_mean / precision, -torch.log(precision)


class _MLPExpert(nn.Module):
    def __init__(self, n_in: int, hidden_dim: int, latent_dim: int):
        super().__init__()
        self.net, width = mlp_encoder(n_in, hidden_dim, latent_dim)
        self.head = GaussianHead(width, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.net(x))


class MultimodalVAE(nn.Module):
    """Audio (MLP on ``features`` or CNN on ``spectrogram``) + text (MLP on ``text``, 384-D MiniLM) in one latent."""

    def __init__(
        self,
        *,
        text_dim: int,
        latent_dim: int = 32,
        hidden_dim: int = 128,
        n_features: int | None = None,
        spectrogram_shape: tuple[int, int] | None = None,
        channels: int = 32,
        audio_weight: float = 1.0,
        text_weight: float = 1.0,
    ):
        super().__init__()
        if (n_features is None) == (spectrogram_shape is None):
            raise ValueError("give the audio as n_features (MLP encoder) or spectrogram_shape (CNN encoder), not both")
        if spectrogram_shape is not None:
            self.audio_key = "spectrogram"
            self.audio_encoder: nn.Module = ConvEncoder(spectrogram_shape, channels, latent_dim)
            self.audio_decoder: nn.Module = ConvDecoder(spectrogram_shape, channels, latent_dim)
            n_audio = spectrogram_shape[0] * spectrogram_shape[1]
        else:
            self.audio_key = "features"
            self.audio_encoder = _MLPExpert(n_features, hidden_dim, latent_dim)
            self.audio_decoder = mlp_decoder(latent_dim, hidden_dim, n_features)
            n_audio = n_features
        self.inputs = (self.audio_key, "text", "text_mask")
        self.text_encoder = _MLPExpert(text_dim, hidden_dim, latent_dim)
        self.text_decoder = mlp_decoder(latent_dim, hidden_dim, text_dim)
        self.audio_weight = audio_weight
        self.text_scale = text_weight * n_audio / text_dim  # see the module docstring

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The product of the experts of the modalities in ``batch`` (audio for every track, text where ``text_mask`` is 1)."""
        experts = []  # (mu, logvar, mask) per modality in the batch
        if self.audio_key in batch:
            experts.append((*self.audio_encoder(batch[self.audio_key]), None))
        if "text" in batch:
            experts.append((*self.text_encoder(batch["text"]), batch["text_mask"].unsqueeze(1)))
        mus, logvars, masks = zip(*experts)
        return product_of_experts(list(mus), list(logvars), list(masks))

    def subsets(self, batch: Batch) -> list[Batch]:
        """The sub-sampled ELBO's batches: the audio alone, the text alone (each expert by itself, reconstructing its own modality)."""
        return [{self.audio_key: batch[self.audio_key]}, {"text": batch["text"], "text_mask": batch["text_mask"]}]

    def forward(self, batch: Batch) -> Output:
        mu, logvar = self.encode(batch)
        z = sample(mu, logvar)
        decoders = {self.audio_key: self.audio_decoder, "text": self.text_decoder}
        return Output({key: decode(z) for key, decode in decoders.items() if key in batch}, mu, logvar)

    def reconstruction(self, batch: Batch, out: Output) -> torch.Tensor:
        """The weighted squared error of each modality in ``batch``; no text, no text error."""
        terms = []
        if self.audio_key in batch:
            terms.append(self.audio_weight * squared_error(batch[self.audio_key], out.recon[self.audio_key]))
        if "text" in batch:
            terms.append(self.text_scale * (squared_error(batch["text"], out.recon["text"]) * batch["text_mask"]))
        return terms[0] if len(terms) == 1 else terms[0] + terms[1]
