"""The convolutional VAE on a spectrogram (20 MFCCs x 128 frames by default).

Three stride-2 convolutions halve both axes each time (20x128 -> 10x64 ->
5x32 -> 3x16), doubling the channels; the decoder mirrors them with
transposed convolutions whose output padding is chosen so that every size
comes back exactly, odd ones included. Any spectrogram of at least 8x8
works (log-mel 128x128 too).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from musicvae.models.vae import Batch, GaussianHead, Output, sample, squared_error

N_LAYERS = 3


def _halvings(size: int) -> list[int]:
    """Sizes after each stride-2, kernel-3, padding-1 convolution: ceil(size / 2) each time."""
    sizes = [size]
    for _ in range(N_LAYERS):
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes


class ConvEncoder(nn.Module):
    def __init__(self, shape: tuple[int, int], channels: int, latent_dim: int, deterministic: bool = False):
        super().__init__()
        widths = [1] + [channels * 2**i for i in range(N_LAYERS)]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Flatten())
        rows, frames = _halvings(shape[0])[-1], _halvings(shape[1])[-1]
        self.head = GaussianHead(widths[-1] * rows * frames, latent_dim, deterministic)

    def forward(self, spectrogram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.head(self.net(spectrogram.unsqueeze(1)))


class ConvDecoder(nn.Module):
    def __init__(self, shape: tuple[int, int], channels: int, latent_dim: int):
        super().__init__()
        rows, frames = _halvings(shape[0]), _halvings(shape[1])
        widths = [channels * 2**i for i in reversed(range(N_LAYERS))] + [1]
        self.start = (widths[0], rows[-1], frames[-1])
        self.fc = nn.Sequential(nn.Linear(latent_dim, math.prod(self.start)), nn.ReLU())
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(widths, widths[1:])):
            # From size s to target t: (s - 1) * 2 - 2 + 3 + padding = t, so padding = t - 2s + 1 (0 or 1).
            level = N_LAYERS - i
            padding = (rows[level - 1] - 2 * rows[level] + 1, frames[level - 1] - 2 * frames[level] + 1)
            layers.append(nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=padding))
            if c_out != 1:
                layers += [nn.BatchNorm2d(c_out), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, *self.start)).squeeze(1)


class ConvVAE(nn.Module):
    """β-VAE with a CNN encoder and a transposed-CNN decoder over ``batch["spectrogram"]`` (n, rows, frames)."""

    inputs = ("spectrogram",)

    def __init__(self, shape: tuple[int, int], latent_dim: int = 32, channels: int = 32):
        super().__init__()
        self.encoder = ConvEncoder(shape, channels, latent_dim)
        self.decoder = ConvDecoder(shape, channels, latent_dim)

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.encoder(batch["spectrogram"])

    def forward(self, batch: Batch) -> Output:
        mu, logvar = self.encode(batch)
        return Output({"spectrogram": self.decoder(sample(mu, logvar))}, mu, logvar)

    def reconstruction(self, batch: Batch, out: Output) -> torch.Tensor:
        return squared_error(batch["spectrogram"], out.recon["spectrogram"])
