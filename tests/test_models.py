from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from conftest import blobs, feature_set
from sklearn.metrics import adjusted_rand_score

from musicvae.config.params import TrialParams
from musicvae.models import build_model
from musicvae.models.conv_vae import ConvVAE
from musicvae.models.multimodal_vae import MultimodalVAE, product_of_experts
from musicvae.models.pca import pca_embedding
from musicvae.models.vae import MLPVAE, elbo, kl_divergence
from musicvae.training.loop import NonFiniteLossError, TrainingState, beta_at, encode, pick_device, seed_everything, train_model
from musicvae.training.trained_models import TrainingHooks
from musicvae.trial import run_trial

CPU = torch.device("cpu")
TRAIN = dict(lr=1e-3, batch_size=32, val_fraction=0.1, device=CPU)


def batch_for(model: str, n: int = 5) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    inputs = {
        "features": np.zeros((n, 40), np.float32),
        "spectrogram": np.zeros((n, 20, 128), np.float32),
        "text": np.zeros((n, 384), np.float32),
        "text_mask": np.ones(n, np.float32),
    }
    params = TrialParams(model=model, latent_dim=32, audio_encoder="cnn" if model == "multimodal_vae" else "mlp")
    net = build_model(params, inputs)
    return net, {k: torch.randn(v.shape) if k != "text_mask" else torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0]) for k, v in inputs.items()}


# ------------------------------------------------------------------- shapes


@pytest.mark.parametrize("model", ["ae", "vae", "conv_vae", "multimodal_vae"])
def test_shapes(model: str) -> None:
    net, batch = batch_for(model)
    out = net(batch)
    assert out.mu.shape == (5, 32)
    assert (out.logvar is None) == (model == "ae")
    for key, recon in out.recon.items():
        assert recon.shape == batch[key].shape
    assert net.reconstruction(batch, out).shape == (5,)


@pytest.mark.parametrize("shape", [(20, 128), (13, 37), (128, 128), (8, 8)])
def test_conv_vae_gives_back_any_spectrogram_size(shape: tuple[int, int]) -> None:
    out = ConvVAE(shape, latent_dim=8, channels=8)({"spectrogram": torch.randn(3, *shape)})
    assert out.recon["spectrogram"].shape == (3, *shape)


def test_build_model_picks_the_audio_encoder_of_the_multimodal_vae() -> None:
    inputs = {"features": np.zeros((4, 40), np.float32), "spectrogram": np.zeros((4, 20, 128), np.float32), "text": np.zeros((4, 384), np.float32)}
    mlp = build_model(TrialParams(model="multimodal_vae", audio_encoder="mlp"), inputs)
    cnn = build_model(TrialParams(model="multimodal_vae", audio_encoder="cnn"), inputs)
    assert mlp.audio_key == "features" and cnn.audio_key == "spectrogram"
    assert sum(p.numel() for p in cnn.parameters()) > sum(p.numel() for p in mlp.parameters())


# ---------------------------------------------------------------------- loss


def test_beta_scales_the_kl_term() -> None:
    net, batch = batch_for("vae")
    torch.manual_seed(0)
    zero = elbo(net, batch, beta=0.0)
    torch.manual_seed(0)
    four = elbo(net, batch, beta=4.0)
    assert zero.kl > 0 and zero.loss.item() == pytest.approx(zero.reconstruction.item())
    assert (four.loss - zero.loss).item() == pytest.approx(4 * zero.kl.item(), rel=1e-5)


def test_free_bits_floor_each_dimensions_kl_in_the_loss_only() -> None:
    """A dimension whose KL is below λ costs λ and gets no push towards the prior; the reported KL is the true one."""
    net, batch = batch_for("vae")
    torch.manual_seed(0)
    plain = elbo(net, batch, beta=2.0)
    torch.manual_seed(0)
    floored = elbo(net, batch, beta=2.0, free_bits=5.0)
    out = net(batch)
    per_dimension = kl_divergence(out.mu, out.logvar).mean(dim=0)
    assert (per_dimension < 5.0).all()  # a fresh network: every dimension is below the floor
    assert floored.kl.item() == pytest.approx(plain.kl.item())
    assert floored.loss.item() == pytest.approx(floored.reconstruction.item() + 2.0 * 5.0 * out.mu.shape[1], rel=1e-5)
    net.zero_grad()
    torch.manual_seed(0)
    elbo(net, batch, beta=2.0, free_bits=5.0).loss.backward()
    kl_free = net.head.to_logvar.weight.grad.clone()
    net.zero_grad()
    torch.manual_seed(0)
    elbo(net, batch, beta=0.0).loss.backward()
    torch.testing.assert_close(kl_free, net.head.to_logvar.weight.grad)  # the floored KL adds no gradient


def test_autoencoder_is_deterministic_and_has_no_kl() -> None:
    net, batch = batch_for("ae")
    net.train()
    a, b = net(batch), net(batch)
    assert torch.equal(a.recon["features"], b.recon["features"])
    assert elbo(net, batch, beta=10.0).kl.item() == 0.0


def test_kl_warmup_is_linear_then_flat() -> None:
    assert [beta_at(e, 4.0, 4) for e in (1, 2, 4, 9)] == [1.0, 2.0, 4.0, 4.0]
    assert beta_at(1, 4.0, 0) == 4.0


@pytest.mark.parametrize("model", ["ae", "vae", "conv_vae", "multimodal_vae"])
def test_loss_decreases_on_a_tiny_problem(model: str) -> None:
    x, labels = blobs()
    data = feature_set(x, labels, text_missing=np.arange(len(x)) % 4 == 0)
    from musicvae.trial import model_inputs

    params = TrialParams(model=model, latent_dim=4, hidden_dim=32, channels=8)
    inputs = model_inputs(params, data)
    seed_everything(0)
    history = train_model(build_model(params, inputs), inputs, beta=1.0, epochs=25, seed=0, **{**TRAIN, "lr": 5e-3})
    assert history[-1].train_loss < 0.6 * history[0].train_loss
    assert history[-1].val_loss < 0.6 * history[0].val_loss


# -------------------------------------------------------- the multimodal VAE


def test_product_of_experts_ignores_a_masked_expert() -> None:
    audio_mu, audio_logvar = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, 0.0]])
    text_mu, text_logvar = torch.tensor([[5.0, 5.0]]), torch.tensor([[-1.0, 2.0]])
    mu, logvar = product_of_experts([audio_mu, text_mu], [audio_logvar, text_logvar], [torch.ones(1, 1), torch.zeros(1, 1)])
    # audio alone with the N(0, 1) prior: precision 1 + 1, mean halved
    assert torch.allclose(mu, audio_mu / 2) and torch.allclose(logvar, -torch.log(torch.tensor(2.0)).expand(1, 2))
    mu_both, _ = product_of_experts([audio_mu, text_mu], [audio_logvar, text_logvar], [torch.ones(1, 1), torch.ones(1, 1)])
    assert (mu_both > mu).all()  # the text expert pulls towards its mean of 5


def test_missing_text_neither_moves_the_latent_nor_counts_as_error() -> None:
    torch.manual_seed(0)
    net = MultimodalVAE(text_dim=16, latent_dim=4, hidden_dim=16, n_features=10)
    audio = torch.randn(2, 10)
    present = {"features": audio, "text": torch.randn(2, 16), "text_mask": torch.ones(2)}
    absent_a = {"features": audio, "text": torch.randn(2, 16), "text_mask": torch.zeros(2)}
    absent_b = {"features": audio, "text": torch.zeros(2, 16), "text_mask": torch.zeros(2)}
    mu_a, _ = net.encode(absent_a)
    mu_b, _ = net.encode(absent_b)
    assert torch.allclose(mu_a, mu_b)  # what stands in for missing text is irrelevant
    assert not torch.allclose(net.encode(present)[0], mu_a)
    out = net(absent_a)
    out_b = type(out)({**out.recon, "text": out.recon["text"] + 100.0}, out.mu, out.logvar)
    assert torch.allclose(net.reconstruction(absent_a, out), net.reconstruction(absent_a, out_b))


def test_multimodal_trial_with_some_tracks_missing_text() -> None:
    x, labels = blobs()
    missing = np.arange(len(x)) % 3 == 0
    result = run_trial(TrialParams(model="multimodal_vae", latent_dim=4, hidden_dim=32, epochs=60, batch_size=32), feature_set(x, labels, missing))
    assert result.embedding.shape == (len(x), 4) and np.isfinite(result.embedding).all()
    assert result.metrics["ari"] > 0.9
    assert adjusted_rand_score(missing, result.clusters) < 0.1  # tracks are grouped by genre, not by having text


def test_text_weight_scales_only_the_text_error() -> None:
    torch.manual_seed(0)
    batch = {"features": torch.randn(3, 10), "text": torch.randn(3, 40), "text_mask": torch.ones(3)}
    light = MultimodalVAE(text_dim=40, n_features=10, latent_dim=4, hidden_dim=16, text_weight=1.0)
    heavy = MultimodalVAE(text_dim=40, n_features=10, latent_dim=4, hidden_dim=16, text_weight=3.0)
    heavy.load_state_dict(light.state_dict())
    light.eval(), heavy.eval()
    torch.manual_seed(1)
    out = light(batch)
    audio = ((out.recon["features"] - batch["features"]) ** 2).sum(1)
    text = ((out.recon["text"] - batch["text"]) ** 2).sum(1) * 10 / 40  # rescaled to the audio's 10 values
    assert torch.allclose(light.reconstruction(batch, out), audio + text)
    assert torch.allclose(heavy.reconstruction(batch, out), audio + 3 * text)


def test_the_multimodal_elbo_adds_each_expert_alone() -> None:
    """MVAE's sub-sampled ELBO: joint + audio alone (no text term) + text alone (no audio term)."""
    torch.manual_seed(0)
    net = MultimodalVAE(text_dim=16, latent_dim=4, hidden_dim=16, n_features=10)
    batch = {"features": torch.randn(5, 10), "text": torch.randn(5, 16), "text_mask": torch.ones(5)}
    audio_only, text_only = net.subsets(batch)
    assert torch.allclose(net.encode(audio_only)[0], net.encode({**batch, "text_mask": torch.zeros(5)})[0])
    text_mu, text_logvar = net.text_encoder(batch["text"])
    assert torch.allclose(net.encode(text_only)[0], product_of_experts([text_mu], [text_logvar], [torch.ones(5, 1)])[0])
    out = net(text_only)
    assert torch.allclose(net.reconstruction(text_only, out), ((out.recon["text"] - batch["text"]) ** 2).sum(1) * 10 / 16)  # no audio term

    def one(b: dict, beta: float) -> torch.Tensor:
        part = net(b)
        return net.reconstruction(b, part).mean() + beta * kl_divergence(part.mu, part.logvar).sum(1).mean()

    torch.manual_seed(3)
    terms = elbo(net, batch, beta=2.0)
    torch.manual_seed(3)
    expected = [one(b, 2.0) for b in (batch, audio_only, text_only)]  # the same draws, in the same order
    assert torch.allclose(terms.loss, sum(expected))
    assert torch.allclose(terms.reconstruction + 2.0 * terms.kl, expected[0])  # what is reported is the joint ELBO

    def floored(b: dict) -> torch.Tensor:  # free bits: each part's own per-dimension batch mean, floored
        part = net(b)
        return net.reconstruction(b, part).mean() + 2.0 * kl_divergence(part.mu, part.logvar).mean(0).clamp_min(1.0).sum()

    torch.manual_seed(3)
    with_free_bits = elbo(net, batch, beta=2.0, free_bits=1.0)
    torch.manual_seed(3)
    assert torch.allclose(with_free_bits.loss, sum(floored(b) for b in (batch, audio_only, text_only)))
    assert torch.allclose(with_free_bits.kl, terms.kl)  # the reported KL is the true one


def test_an_expert_alone_is_what_masking_the_other_out_gives_to_the_bit() -> None:
    """A subset's batch holds one modality and the other is not computed at all: the loss and every gradient are
    those of the whole model with the other expert and its error multiplied by zero, exactly (zeros add nothing)."""
    torch.manual_seed(0)
    net = MultimodalVAE(text_dim=16, latent_dim=4, hidden_dim=16, n_features=10)
    batch = {"features": torch.randn(6, 10), "text": torch.randn(6, 16), "text_mask": torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])}

    def masked(audio_mask: torch.Tensor, text_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        audio_mu, audio_logvar = net.audio_encoder(batch["features"])
        text_mu, text_logvar = net.text_encoder(batch["text"])
        mu, logvar = product_of_experts([audio_mu, text_mu], [audio_logvar, text_logvar], [audio_mask.unsqueeze(1), text_mask.unsqueeze(1)])
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        audio = ((net.audio_decoder(z) - batch["features"]) ** 2).sum(1) * audio_mask
        text = ((net.text_decoder(z) - batch["text"]) ** 2).sum(1) * text_mask
        return (net.audio_weight * audio + net.text_scale * text).mean(), kl_divergence(mu, logvar).mean(0).sum()

    def summed() -> torch.Tensor:  # joint, audio alone, text alone, added up as elbo adds them
        reconstruction, kl = masked(ones, present)
        loss = reconstruction + 2.0 * kl
        for audio_mask, text_mask in ((ones, zeros), (zeros, present)):
            reconstruction, kl = masked(audio_mask, text_mask)
            loss = loss + reconstruction + 2.0 * kl
        return loss

    def loss_and_grads(loss: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        net.zero_grad()
        torch.manual_seed(3)
        value = loss()
        value.backward()
        return value.detach(), [p.grad.clone() for p in net.parameters()]

    ones, zeros, present = torch.ones(6), torch.zeros(6), batch["text_mask"]
    ours = loss_and_grads(lambda: elbo(net, batch, beta=2.0).loss)
    theirs = loss_and_grads(summed)
    assert torch.equal(ours[0], theirs[0])
    assert all(torch.equal(a, b) for a, b in zip(ours[1], theirs[1]))


# --------------------------------------------------- determinism and resume


@pytest.mark.parametrize("model", ["ae", "vae", "conv_vae", "multimodal_vae"])
def test_a_trial_is_deterministic_for_a_seed(model: str) -> None:
    x, labels = blobs()
    data = feature_set(x, labels, text_missing=np.arange(len(x)) % 4 == 0)
    a, b, c = (run_trial(TrialParams(model=model, latent_dim=4, channels=8, epochs=3, seed=s), data) for s in (1, 1, 2))
    assert a.metrics["val_loss"] == b.metrics["val_loss"] != c.metrics["val_loss"]
    assert (a.embedding == b.embedding).all() and (a.clusters == b.clusters).all()


def test_resuming_from_a_checkpoint_gives_the_uninterrupted_result(tmp_path) -> None:
    x, _ = blobs()
    inputs = {"features": x}
    settings = dict(beta=1.0, epochs=6, seed=3, kl_warmup_epochs=4, **TRAIN)

    def fresh() -> MLPVAE:
        seed_everything(3)
        return MLPVAE(12, 4, 32)

    straight = fresh()
    full = train_model(straight, inputs, **settings)

    saved: list[TrainingState] = []
    first = fresh()
    train_model(first, inputs, **{**settings, "epochs": 6}, checkpoint_every=3, on_epoch=lambda s, st: saved.append(st) if st and st.epoch == 3 else None)
    saved[0].save(tmp_path)  # through the file, as Tune does
    torch.manual_seed(999)  # a restarted process has other random state: the checkpoint must restore it
    resumed = MLPVAE(12, 4, 32)
    rest = train_model(resumed, inputs, **settings, resume=TrainingState.load(tmp_path))

    assert [h.epoch for h in rest] == list(range(1, 7))
    assert [h.val_loss for h in rest] == [h.val_loss for h in full]
    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_checkpoints_come_every_n_epochs_and_at_the_end() -> None:
    x, _ = blobs()
    epochs: list[int] = []
    train_model(
        MLPVAE(12, 4, 32),
        {"features": x},
        beta=1.0,
        epochs=7,
        seed=0,
        checkpoint_every=3,
        on_epoch=lambda s, st: epochs.append(st.epoch) if st else None,
        **TRAIN,
    )
    assert epochs == [3, 6, 7]


def test_non_finite_loss_stops_training_with_a_reason() -> None:
    x, _ = blobs()
    x[3, 2] = np.nan
    with pytest.raises(NonFiniteLossError, match="epoch 1"):
        train_model(MLPVAE(12, 4, 32), {"features": x}, beta=1.0, epochs=2, seed=0, **TRAIN)


class TurnsNaN(MLPVAE):
    """An MLP VAE whose reconstruction becomes NaN at the ``at``-th training batch (counted from 1, over all epochs)."""

    def __init__(self, at: int):
        super().__init__(12, 4, 32)
        self.at, self.batches = at, 0

    def forward(self, batch):
        out = super().forward(batch)
        if self.training:
            self.batches += 1
            if self.batches == self.at:
                out.recon["features"] = out.recon["features"] * float("nan")
        return out


def test_a_loss_that_turns_nan_mid_epoch_fails_that_epoch() -> None:
    """Finiteness is checked once per epoch, on the epoch's summed loss: one NaN batch still fails its epoch, unreported."""
    x, _ = blobs()  # 108 training tracks: batches of 32, 32, 32 and 12 an epoch
    reported: list[int] = []
    with pytest.raises(NonFiniteLossError, match=r"^loss became nan at epoch 2 "):  # the training loss's, not validation's
        train_model(TurnsNaN(at=6), {"features": x}, beta=1.0, epochs=3, seed=0, on_epoch=lambda s, st: reported.append(s.epoch), **TRAIN)
    assert reported == [1]  # epoch 2 was neither reported nor checkpointed


# ------------------------------------------------------------- baselines, trials


def test_pca_caps_components_at_the_feature_count() -> None:
    x, _ = blobs(d=6)
    embedding, explained = pca_embedding(x, 32)
    assert embedding.shape == (120, 6) and explained == pytest.approx(1.0)


def test_device_choice() -> None:
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no GPU"):
            pick_device("cuda")


def test_encode_returns_means_and_log_variances() -> None:
    x, _ = blobs()
    mu, logvar = encode(MLPVAE(12, 4, 32), {"features": x}, CPU, batch_size=50)  # several batches
    assert mu.shape == logvar.shape == (120, 4)
    mu_ae, logvar_ae = encode(MLPVAE(12, 4, 32, deterministic=True), {"features": x}, CPU)
    assert mu_ae.shape == (120, 4) and logvar_ae is None


@pytest.mark.parametrize("model", ["raw", "pca", "ae", "vae", "conv_vae"])
def test_run_trial_end_to_end(model: str) -> None:
    x, labels = blobs()
    epochs = []
    params = TrialParams(model=model, latent_dim=4, channels=8, epochs=30, batch_size=32)
    result = run_trial(params, feature_set(x, labels), hooks=TrainingHooks(on_epoch=lambda s, _: epochs.append(s)))
    assert result.embedding.shape == (120, 12 if model == "raw" else 4) and len(set(result.clusters)) == 3
    assert result.metrics["ari"] > 0.9 and result.metrics["n_clusters"] == 3
    assert len(epochs) == (30 if model not in ("raw", "pca") else 0)
    assert ("val_loss" in result.metrics) == (model not in ("raw", "pca"))
    assert {"latent_mean_abs_corr", "latent_active_units", "latent_total_correlation", "latent_mi_genre_max"} <= set(result.metrics)
    assert ("latent_kl_total" in result.metrics) == (model in ("vae", "conv_vae"))


def test_run_trial_without_labels_needs_n_clusters() -> None:
    x, _ = blobs()
    with pytest.raises(ValueError, match="n_clusters"):
        run_trial(TrialParams(model="pca"), feature_set(x, None))
    result = run_trial(TrialParams(model="pca", n_clusters=3), feature_set(x, None))
    assert "ari" not in result.metrics and result.metrics["silhouette"] > 0.5
    dbscan = run_trial(TrialParams(model="pca", clusterer="dbscan"), feature_set(x, None))  # finds its own k
    assert dbscan.metrics["clusters_found"] >= 2 and "chosen_eps" in dbscan.metrics
