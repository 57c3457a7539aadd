"""Seeds trained together: the replicas of one model as one vectorised model.

A method of a study runs over several seeds: the same network, data and
settings, with other initial weights, data split, batch order and sampling
noise. A small MLP VAE keeps neither a CPU core nor a GPU busy by itself,
so :class:`Replicas` stacks the seeds' weights along a leading axis
(``torch.func.stack_module_state``) and runs the loss of all of them as one
(``vmap`` over ``functional_call``): each matrix product of a step is one
batched product. :func:`musicvae.training.loop.train_replicas` drives it.

Each replica is exactly its seed's model. On the CPU the batched kernels of
the linear layers give every replica the very numbers its lone run gives
(where each product is large enough, see :func:`vectorises`), and each
replica draws its noise from its own generator, started where its lone
run's would be: its weights, losses and embedding equal the lone run's to
the bit (``tests/test_replicas.py``). A model that cannot be vectorised so
trains one seed at a time.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from musicvae.config.params import TrialParams
from musicvae.models.vae import elbo, noise_from

if TYPE_CHECKING:
    from musicvae.training.tensors import Tensors


def noise_state(device: torch.device) -> torch.Tensor:
    """The state of the generator :func:`~musicvae.models.vae.sample` draws from on ``device`` (torch's global one).

    Taken right after a seed's model is built, it is where that seed's sampling noise starts.
    """
    return torch.get_rng_state() if device.type == "cpu" else torch.cuda.get_rng_state(device)


def set_noise_state(state: torch.Tensor, device: torch.device) -> None:
    """Put torch's global generator on ``device`` where :func:`noise_state` found it: a seed trained alone draws from there."""
    if device.type == "cpu":
        torch.set_rng_state(state)
    else:
        torch.cuda.set_rng_state(state, device)


def vectorises(model: nn.Module) -> bool:
    """Whether the seeds of ``model`` can train as one vectorised model: not with convolutions.

    A vmapped convolution is one grouped convolution: on the CPU it rounded
    differently from the lone model's and was slower than the seeds one after
    another, where MLP and multimodal VAE seeds are faster together
    (bench/throughput.py, figures in the README). Whether the replicas of
    a model that can are exact is measured before they train (:func:`exact`).
    """
    return not any(isinstance(m, (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm)) for m in model.modules())


def vectorises_params(params: TrialParams) -> bool:
    """:func:`vectorises` before the model is built (what ``--dry-run`` plans): the convolutional models are those of the
    spectrogram; ``tests/test_replicas.py`` holds the two answers together for every model."""
    return not params.uses_spectrogram


class _ELBO(nn.Module):
    """``elbo`` of a model as a module's output, so that ``functional_call`` runs it on any replica's weights."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor], beta: float, free_bits: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        terms = elbo(self.model, batch, beta, free_bits)
        return terms.loss, terms.reconstruction, terms.kl


class Replicas:
    """The models of ``seeds`` trained as one: weights, buffers, gradients and batches with a leading replica axis.

    ``noise[i]`` is :func:`noise_state` right after ``models[i]`` was built.
    The noise of a step is drawn before it, replica by replica from its own
    generator, and handed to ``vmap`` (``randomness="error"``: a random draw
    inside would fail, never silently differ). The weights live in the
    stacked tensors while training; :meth:`sync` writes them into the models.
    """

    def __init__(self, models: list[nn.Module], seeds: list[int], noise: list[torch.Tensor], lr: float, device: torch.device):
        self.models, self.seeds, self.device = list(models), list(seeds), device
        self.generators = [torch.Generator(device=device) for _ in models]
        for generator, state in zip(self.generators, noise):
            generator.set_state(state)
        self.base = _ELBO(copy.deepcopy(models[0]))
        self.loss = vmap(self._loss, in_dims=(0, 0, 0, 0, None, None), randomness="error")
        self.draws: list[tuple[int, ...]] = []  # the shape per track of each noise draw, in the order sample() asks for them
        self._stack(lr)

    def _stack(self, lr: float) -> None:
        self.params, self.buffers = stack_module_state([_ELBO(m) for m in self.models])
        self.optimizer = torch.optim.Adam(self.params.values(), lr=lr)  # torch's default Adam, as training.train_model

    def _loss(self, params: dict, buffers: dict, batch: dict, noise: tuple, beta: float, free_bits: float) -> tuple[torch.Tensor, ...]:
        draws = iter(noise)
        with noise_from(lambda mu: next(draws)):
            return functional_call(self.base, (params, buffers), (batch, beta, free_bits))

    def _noise(self, data: Tensors, tracks: int) -> tuple[torch.Tensor, ...]:
        if not self.draws:  # counted once, on a copy in eval mode (its batch-norm statistics untouched)
            probe = copy.deepcopy(self.models[0]).eval()
            with torch.no_grad(), noise_from(lambda mu: self.draws.append(tuple(mu.shape[1:])) or torch.zeros_like(mu)):
                elbo(probe, data.batch(torch.arange(2)), 1.0)
        return tuple(torch.stack([torch.randn((tracks, *shape), generator=g, device=self.device) for g in self.generators]) for shape in self.draws)

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def step(self, data: Tensors, index: torch.Tensor, beta: float, free_bits: float, noise: tuple | None = None) -> torch.Tensor:
        """One optimiser step of every replica on its row of ``index``; their losses. ``noise``: the draws, else from the generators."""
        noise = self._noise(data, index.shape[1]) if noise is None else noise
        loss, _, _ = self.loss(self.params, self.buffers, data.batch(index), noise, beta, free_bits)
        self.optimizer.zero_grad()
        loss.sum().backward()  # no weight is shared: each replica's gradient is its own loss's
        self.optimizer.step()
        return loss.detach()

    def evaluate(self, data: Tensors, index: torch.Tensor, beta: float) -> torch.Tensor:
        """Each replica's loss, reconstruction and KL on its row of ``index``, (replicas, 3)."""
        return torch.stack(self.loss(self.params, self.buffers, data.batch(index), self._noise(data, index.shape[1]), beta, 0.0), dim=1)

    def sync(self) -> None:
        """Write each replica's weights and buffers into its model."""
        stacked = {**self.params, **self.buffers}
        with torch.no_grad():
            for i, model in enumerate(self.models):
                for name, value in model.state_dict(keep_vars=True).items():
                    value.copy_(stacked[f"model.{name}"][i])

    def load_models(self) -> None:
        """Take the models' weights back into the stack, in place, so the optimiser's state stays (VaDE sets its prior in them)."""
        with torch.no_grad():
            for name, value in {**self.params, **self.buffers}.items():
                value.copy_(torch.stack([m.state_dict()[name.removeprefix("model.")] for m in self.models]))

    def drop(self, keep: list[int]) -> None:
        """Go on with the replicas at ``keep``, each with its optimiser state."""
        if len(keep) == len(self.models):
            return
        self.sync()
        state = self.optimizer.state_dict()
        for entry in state["state"].values():
            entry.update({key: value[keep] for key, value in entry.items() if key != "step"})
        self.models, self.seeds, self.generators = ([items[i] for i in keep] for items in (self.models, self.seeds, self.generators))
        if keep:
            self._stack(self.optimizer.param_groups[0]["lr"])
            self.optimizer.load_state_dict(state)

    def rng_states(self) -> list[dict]:
        return [{"noise": generator.get_state()} for generator in self.generators]

    def restore_rng(self, states: list[dict]) -> None:
        for generator, state in zip(self.generators, states):
            generator.set_state(state["noise"])


def exact(models: list[nn.Module], data: Tensors, sizes: list[int], beta: float, free_bits: float, device: torch.device) -> bool:
    """Whether a vectorised step gives each of ``models`` exactly what its own step gives, at each batch size: measured, on copies.

    The loss, every gradient and the weights after Adam's update, compared to
    the bit. On the CPU with MKL this holds for the MLP models where each
    linear layer's product has 400 multiply-adds or more; below that torch's
    bmm runs a loop of its own that sums in another order than MKL's gemm (a
    batch of one track through a layer 16 wide, say). Elsewhere (another BLAS,
    CUDA's batched kernels) it is whatever this finds.
    """
    copies = [copy.deepcopy(m).to(device).train() for m in models]
    together = Replicas([copy.deepcopy(m) for m in models], list(range(len(models))), [noise_state(device)] * len(models), 1e-3, device)
    together.train()
    optimizers = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in copies]
    for rows in sizes:
        index = torch.arange(rows).repeat(len(models), 1)
        noise = together._noise(data, rows)
        losses = together.step(data, index, beta, free_bits, noise)
        together.sync()
        for i, (model, optimizer) in enumerate(zip(copies, optimizers)):
            draws = iter([draw[i] for draw in noise])
            with noise_from(lambda mu: next(draws)):
                loss = elbo(model, data.batch(index[i]), beta, free_bits).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            grads = all(torch.equal(p.grad, together.params[f"model.{name}"].grad[i]) for name, p in model.named_parameters() if p.grad is not None)
            weights = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), together.models[i].state_dict().values()))
            if not (torch.equal(loss, losses[i]) and grads and weights):
                return False
    return True
