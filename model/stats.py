"""A voice's normalization statistics: what its mel and controls were scaled by in training.

Measured once on the training corpus (:meth:`Stats.of`), saved in the acoustic checkpoint's
header (``"stats"``), and read back by the trainers and the voice: the model sees normalized
log-mel, normalized log f0 and normalized energy; everything outside it speaks log-mel and Hz.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

import numpy as np


@dataclass(frozen=True)
class Stats:
    mel_mean: float  # log-mel, over every bin of every frame
    mel_std: float
    f0_mean: float  # natural-log f0 (Hz), over voiced frames
    f0_std: float
    energy_mean: float
    energy_std: float

    @classmethod
    def of(cls, items: Iterable) -> Stats:
        """Of training items: each with ``mel`` ``(n_mels, T)`` and raw ``controls`` ``(T, 3)``
        (log f0, voicing, energy)."""
        items = list(items)
        mel = np.concatenate([i.mel for i in items], 1)
        c = np.concatenate([i.controls for i in items], 0)
        f0 = c[c[:, 1] > 0, 0]
        return cls(float(mel.mean()), float(mel.std()), float(f0.mean()), float(f0.std()),
                   float(c[:, 2].mean()), float(c[:, 2].std()))  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> Stats:
        """From a checkpoint header's ``"stats"``; every field, nothing else."""
        names = [f.name for f in fields(cls)]
        if sorted(d) != sorted(names):
            raise ValueError(f"statistics need exactly {names}; got {sorted(d)}")
        return cls(**{k: float(d[k]) for k in names})

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def controls(self, c: np.ndarray) -> np.ndarray:
        """Raw (log f0, voicing, energy) ``(T, 3)`` -> the model's normalized controls."""
        out = c.copy()
        out[:, 0] = np.where(c[:, 1] > 0, (c[:, 0] - self.f0_mean) / self.f0_std, 0.0)
        out[:, 2] = (c[:, 2] - self.energy_mean) / self.energy_std
        return out

    def mel(self, x):
        """Normalized mel (a tensor or an array) -> log-mel, in the arithmetic it came in."""
        return x * self.mel_std + self.mel_mean

    def hz(self, x):
        """Normalized log f0 (a tensor or an array) -> Hz, by torch's or numpy's exp."""
        y = x * self.f0_std + self.f0_mean
        return np.exp(y) if isinstance(y, np.ndarray | np.floating | float) else y.exp()

    def log_f0(self, hz: float) -> float:
        """Hz -> the normalized log f0 the generator is conditioned on."""
        return (math.log(hz) - self.f0_mean) / self.f0_std
