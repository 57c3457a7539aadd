"""A trial's input arrays as torch tensors, where the training loop, the replicas and IDEC read their batches."""

from __future__ import annotations

import warnings

import numpy as np
import torch

DEVICE_RESIDENT_BYTES = 2 * 1024**3  # above this, inputs stay in host memory and batches are copied


class Tensors:
    """The inputs as tensors, on the device when they fit; ``batch(idx)`` gives one batch on the device."""

    def __init__(self, inputs: dict[str, np.ndarray], device: torch.device):
        resident = device.type == "cpu" or sum(a.nbytes for a in inputs.values()) <= DEVICE_RESIDENT_BYTES
        home = device if resident else torch.device("cpu")
        self.device, self.home = device, home
        with warnings.catch_warnings():
            # A trial's arrays are read-only views of Ray's object store, shared by every trial on the
            # node; the tensors are only ever read, so torch's "non-writable array" warning does not apply.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
            self.data = {key: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=home) for key, a in inputs.items()}
        if not resident and torch.cuda.is_available():
            self.data = {key: t.pin_memory() for key, t in self.data.items()}

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        index = index.to(self.home)  # a no-op for an index already there (the training loop's)
        return {key: t[index].to(self.device, non_blocking=True) for key, t in self.data.items()}
