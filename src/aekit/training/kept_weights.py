"""A copy of a network's weights kept aside (early stopping's best epoch and start).

A copy as large as the network itself would double its memory: a 100,000-feature model
holds 435 MB of weights. Above :data:`SPILL_BYTES` the copy therefore goes to an anonymous
temporary file (raw bytes; it has no name, so nothing is left behind even if the process is
killed) and is read back straight into the module's own tensors, so training holds no second
copy in memory; smaller ones stay in memory. Two moments still read a spilled copy back
whole: writing a checkpoint (:meth:`KeptWeights.tensors`) and the copies a resumed run takes
from its checkpoint, which stay in memory. The file lives in Python's temporary directory
(``TMPDIR``): where that is a RAM-backed ``tmpfs``, spilling saves nothing. Both give the same
weights back, bit for bit, and refuse a module whose tensors changed shape or dtype.
"""

from __future__ import annotations

import tempfile
import weakref
from typing import Any

import torch
from torch import nn

__all__ = ["SPILL_BYTES", "KeptWeights"]

SPILL_BYTES = 64 << 20  # weights above this go to a temporary file


def _raw(tensor: torch.Tensor) -> Any:
    """A byte view (NumPy) of a contiguous CPU tensor's storage: written and read in place."""
    return tensor.detach().reshape(-1).view(torch.uint8).numpy()


class KeptWeights:
    """The state of ``module`` (``state_dict()``) as it is now, to load back later.

    Parameters
    ----------
    state : dict of str to Tensor
        A module's ``state_dict()``, copied here (not kept by reference).
    spill_bytes : int, default=SPILL_BYTES
        Larger states, all on the CPU, are kept in a temporary file.
    """

    def __init__(self, state: dict[str, torch.Tensor], spill_bytes: int = SPILL_BYTES) -> None:
        size = sum(t.numel() * t.element_size() for t in state.values())
        on_cpu = all(t.device.type == "cpu" for t in state.values())
        self._layout = {k: (t.dtype, tuple(t.shape)) for k, t in state.items()}
        self._tensors: dict[str, torch.Tensor] | None = None
        self._file: Any = None
        if size <= spill_bytes or not on_cpu:
            self._tensors = {k: t.detach().clone() for k, t in state.items()}
            return
        self._file = tempfile.TemporaryFile(prefix="aekit-weights-")  # noqa: SIM115 (lives with self)
        weakref.finalize(self, self._file.close)  # closed (and gone) with this object
        for tensor in state.values():
            self._file.write(_raw(tensor.contiguous()).data)
        self._file.flush()

    @classmethod
    def held(cls, tensors: dict[str, torch.Tensor]) -> KeptWeights:
        """Wrap tensors read from a checkpoint (kept in memory as they are, not copied)."""
        kept = cls.__new__(cls)
        kept._layout = {k: (t.dtype, tuple(t.shape)) for k, t in tensors.items()}
        kept._tensors, kept._file = tensors, None
        return kept

    @property
    def spilled(self) -> bool:
        """Whether the weights are kept in a temporary file (else in memory)."""
        return self._file is not None

    def tensors(self) -> dict[str, torch.Tensor]:
        """The kept state as tensors (read from the file into new ones when spilled)."""
        if self._tensors is not None:
            return self._tensors
        out = {k: torch.empty(shape, dtype=dtype) for k, (dtype, shape) in self._layout.items()}
        self._read_into(out)
        return out

    def load_into(self, module: nn.Module) -> None:
        """Put the kept weights back into ``module`` (in place, from the file if spilled)."""
        if self._tensors is not None:
            module.load_state_dict(self._tensors)
            return
        targets = module.state_dict()
        if any(t.device.type != "cpu" for t in targets.values()):
            module.load_state_dict(self.tensors())
            return
        with torch.no_grad():
            self._read_into(targets)

    def _read_into(self, targets: dict[str, torch.Tensor]) -> None:
        """Read the file's tensors, in order, straight into ``targets``' storage."""
        f = self._file
        f.seek(0)
        for key, (dtype, shape) in self._layout.items():
            target = targets[key]
            if (target.dtype, tuple(target.shape)) != (dtype, shape):  # never misaligned bytes
                raise RuntimeError(
                    f"kept weights: {key} is {target.dtype} {tuple(target.shape)} now, "
                    f"kept as {dtype} {shape}"
                )
            staged = target if target.is_contiguous() else torch.empty(shape, dtype=dtype)
            buffer = _raw(staged).data
            if f.readinto(buffer) != buffer.nbytes:
                raise RuntimeError(f"kept weights: the temporary file ended inside {key}")
            if staged is not target:
                target.copy_(staged)
