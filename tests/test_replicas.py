"""Seeds trained together as one vectorised model (musicvae.training.replicas) against each seed trained alone.

Tolerance: none. On the CPU a replica's loss history, weights and embedding
equal its lone run's bit for bit, so every comparison here is exact. The
sizes are ones where that holds (musicvae.training.replicas.exact: each linear product
of at least 400 multiply-adds in every batch; 120 tracks, batches of 32 and
12, 12 validation tracks), on every CPU these tests have met: no layer is 8
wide, because on an AMD EPYC with AVX2 (MKL 2024.2) the weight gradient of a
layer with 8 units on one side rounds apart under vmap (it is computed as
grad_out^T x, transposed, where the lone backward computes x^T grad_out),
which the probe finds there and sends such a model seed by seed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import blobs, feature_set

from musicvae.config.params import NEURAL_MODELS, TrialParams
from musicvae.models import build_model
from musicvae.training.loop import NonFiniteLossError, Outcome, TrainingState, batch_sizes, encode, seed_everything, train_model, train_replicas
from musicvae.training.replicas import exact, noise_state, vectorises, vectorises_params
from musicvae.training.tensors import Tensors
from musicvae.trial import model_inputs

CPU = torch.device("cpu")
SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def data():
    x, labels = blobs(n_per=40, k=3, d=12)
    return feature_set(x, labels, text_missing=np.arange(len(x)) % 4 == 0)


def _params(model: str, **changes) -> TrialParams:
    base = {"model": model, "epochs": 5, "latent_dim": 16, "hidden_dim": 32, "batch_size": 32, "kl_warmup_epochs": 2}
    if model == "vade":
        base.update(vade_pretrain_epochs=2, kl_warmup_epochs=0)
    if model == "multimodal_vae":
        base["free_bits"] = 0.1
    return TrialParams(**{**base, **changes})


def _settings(params: TrialParams) -> dict:
    keys = ("beta", "epochs", "lr", "batch_size", "val_fraction", "kl_warmup_epochs", "free_bits")
    return {key: getattr(params, key) for key in keys} | {"device": CPU}


def _build(params: TrialParams, inputs: dict, seeds: list[int]) -> tuple[list[torch.nn.Module], list[torch.Tensor]]:
    """Each seed's model as trial.embed builds it, and where its noise starts."""
    models, noise = [], []
    for seed in seeds:
        seed_everything(seed)
        models.append(build_model(params.model_copy(update={"seed": seed}), inputs, n_components=3))
        noise.append(noise_state(CPU))
    return models, noise


def _alone(params: TrialParams, inputs: dict, seed: int, break_it=None) -> tuple[torch.nn.Module, list]:
    (model,), _ = _build(params, inputs, [seed])
    if break_it is not None:
        break_it(model)
    reported: list = []
    try:
        train_model(model, inputs, seed=seed, on_epoch=lambda stats, state: reported.append(stats), **_settings(params))
    except NonFiniteLossError as error:
        return model, Outcome(reported, error)
    return model, Outcome(reported)


def _exact(models: list[torch.nn.Module], inputs: dict, params: TrialParams) -> bool:
    sizes = batch_sizes(len(next(iter(inputs.values()))), params.val_fraction, params.batch_size)
    return exact(models, Tensors(inputs, CPU), sizes, params.beta, params.free_bits, CPU)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("model", ["vae", "ae", "multimodal_vae", "vade"])
def test_each_replica_is_its_seeds_lone_model_bit_for_bit(data, model) -> None:
    params = _params(model)
    inputs = model_inputs(params, data)
    models, noise = _build(params, inputs, SEEDS)
    assert vectorises(models[0]) and _exact(models, inputs, params)
    epochs: list[list] = []
    outcomes = train_replicas(models, inputs, seeds=SEEDS, noise=noise, on_epoch=lambda stats, state: epochs.append(stats), **_settings(params))
    for i, seed in enumerate(SEEDS):
        lone, history = _alone(params, inputs, seed)
        assert outcomes[i] == history  # every epoch's train and validation loss, reconstruction and KL, to the bit
        assert [stats[i] for stats in epochs] == history.history
        assert _same_weights(models[i], lone)
        np.testing.assert_array_equal(encode(models[i], inputs, CPU)[0], encode(lone, inputs, CPU)[0])
    assert len({o.history[-1].val_loss for o in outcomes}) == len(SEEDS)  # three seeds, three models


def _poison(model: torch.nn.Module) -> None:
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("nan")


def test_a_replica_whose_loss_turns_nan_stops_alone_and_the_others_go_on(data) -> None:
    """Replica 1's weights turn NaN after epoch 2 (laid into its checkpoint): it stops at epoch 3, the others train on as alone."""
    params = _params("vae")
    inputs = model_inputs(params, data)
    models, noise = _build(params, inputs, SEEDS)
    saved: list[TrainingState] = []
    train_replicas(
        models, inputs, seeds=SEEDS, noise=noise, checkpoint_every=2, on_epoch=lambda stats, state: state and saved.append(state), **_settings(params)
    )
    state = saved[0]
    next(iter(state.models[1].values()))[0, 0] = float("nan")
    epochs: list[list] = []
    models, noise = _build(params, inputs, SEEDS)
    outcomes = train_replicas(models, inputs, seeds=SEEDS, noise=noise, resume=state, on_epoch=lambda stats, _: epochs.append(stats), **_settings(params))
    assert str(outcomes[1].error) == "loss became nan at epoch 3 (lr=0.001, beta=1.0)"
    assert outcomes[1].history == _alone(params, inputs, 1)[1].history[:2]  # its epochs before the failure
    assert [stats[1] for stats in epochs] == [None] * 3
    for i in (0, 2):
        lone, alone = _alone(params, inputs, SEEDS[i])
        assert outcomes[i] == alone and _same_weights(models[i], lone)


def test_replicas_resume_from_a_checkpoint_to_the_uninterrupted_result(data, tmp_path) -> None:
    params = _params("multimodal_vae", epochs=6)
    inputs = model_inputs(params, data)
    straight, noise = _build(params, inputs, SEEDS)
    _poison(straight[2])  # a replica that failed before the checkpoint stays failed after it
    full = train_replicas(straight, inputs, seeds=SEEDS, noise=noise, **_settings(params))

    first, noise = _build(params, inputs, SEEDS)
    _poison(first[2])
    saved: list[TrainingState] = []
    keep = lambda stats, state: saved.append(state) if state and state.epoch == 3 else None  # noqa: E731
    train_replicas(first, inputs, seeds=SEEDS, noise=noise, checkpoint_every=3, on_epoch=keep, **_settings(params))
    saved[0].save(tmp_path)  # through the file, as Tune does
    resumed, noise = _build(params, inputs, [7, 8, 9])  # a restarted process: other weights and random state
    rest = train_replicas(resumed, inputs, seeds=SEEDS, noise=noise, resume=TrainingState.load(tmp_path), **_settings(params))

    assert rest[:2] == full[:2] and [h.epoch for h in rest[0].history] == list(range(1, 7))
    assert str(rest[2].error) == str(full[2].error) != "None"
    for a, b in zip(straight[:2], resumed[:2]):
        assert _same_weights(a, b)


def test_a_model_with_convolutions_trains_one_seed_at_a_time(data) -> None:
    params = _params("conv_vae", channels=4)
    inputs = model_inputs(params, data)
    models, noise = _build(params, inputs, SEEDS)
    assert not vectorises(models[0])  # a vmapped convolution is a grouped one: slower on the CPU, and it rounds differently
    with pytest.raises(ValueError, match="ConvVAE"):
        train_replicas(models, inputs, seeds=SEEDS, noise=noise, **_settings(params))


@pytest.mark.parametrize("model", NEURAL_MODELS)
def test_the_plan_knows_which_models_vectorise_before_building_them(data, model) -> None:
    params = _params(model, channels=4)
    built = build_model(params, model_inputs(params, data), n_components=3)
    assert vectorises_params(params) == vectorises(built)


def test_the_probe_finds_where_a_vectorised_step_is_not_exact(data) -> None:
    """A last batch of one track: the linear products under 400 multiply-adds run in torch's own loop, not MKL's gemm."""
    assert batch_sizes(120, 0.1, 107) == [1, 12, 107]
    small, large = _params("vae", batch_size=107), _params("vae")
    for params, expected in ((small, False), (large, True)):
        inputs = model_inputs(params, data)
        models, _ = _build(params, inputs, SEEDS)
        assert _exact(models, inputs, params) is expected
        models_alone = [m for m, _ in (_alone(params, inputs, seed) for seed in SEEDS)]
        together, noise = _build(params, inputs, SEEDS)
        train_replicas(together, inputs, seeds=SEEDS, noise=noise, **_settings(params))
        assert all(_same_weights(a, b) for a, b in zip(together, models_alone)) is expected  # what the probe foretold
