"""The audio and feature convention every part of melgand agrees on.

The default is the HiFi-GAN convention (DESIGN.md): 22050 Hz mono float32, n_fft 1024,
Hann window 1024, hop 256, 80 slaney mel bands over 0-8000 Hz, magnitude spectrum,
natural log clamped at 1e-5, center=False with reflect padding of (n_fft - hop) / 2 = 384
samples a side, so that ``frames == len(y) // hop``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Convention:
    sample_rate: int = 22050
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    log_clamp: float = 1e-5
    pad: int = 384
    pad_mode: str = "reflect"

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate <= 0:
            problems.append(f"sample_rate must be > 0, got {self.sample_rate}")
        if self.n_fft < 16 or self.n_fft & (self.n_fft - 1):
            problems.append(f"n_fft must be a power of two >= 16, got {self.n_fft}")
        if not 0 < self.win_length <= self.n_fft:
            problems.append(f"win_length must be in 1..n_fft ({self.n_fft}), got {self.win_length}")
        if not 0 < self.hop_length <= self.win_length:
            problems.append(
                f"hop_length must be in 1..win_length ({self.win_length}), got {self.hop_length}"
            )
        if self.n_mels < 1:
            problems.append(f"n_mels must be >= 1, got {self.n_mels}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            problems.append(
                f"need 0 <= fmin < fmax <= sample_rate/2 ({self.sample_rate / 2}), "
                f"got fmin={self.fmin}, fmax={self.fmax}"
            )
        if not self.log_clamp > 0:
            problems.append(f"log_clamp must be > 0, got {self.log_clamp}")
        if self.pad < 0:
            problems.append(f"pad must be >= 0, got {self.pad}")
        if self.pad_mode not in ("reflect", "constant"):
            problems.append(f"pad_mode must be 'reflect' or 'constant', got {self.pad_mode!r}")
        if problems:
            raise ValueError("invalid audio convention: " + "; ".join(problems))

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def n_frames(self, n_samples: int) -> int:
        """Frames the analysis gives for ``n_samples`` input samples (0 if too short)."""
        padded = n_samples + 2 * self.pad
        return 0 if padded < self.n_fft else 1 + (padded - self.n_fft) // self.hop_length

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Convention:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown audio convention keys {unknown}; known: {sorted(known)}")
        return cls(**d)

    def check_same(self, other: Convention, what: str = "checkpoint") -> None:
        """Raise a ValueError naming every field where ``other`` (e.g. a checkpoint's) differs."""
        diff = [
            f"{f.name}: {what} has {getattr(other, f.name)!r}, expected {getattr(self, f.name)!r}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]
        if diff:
            raise ValueError(
                f"the {what} was made with a different audio convention ("
                + "; ".join(diff)
                + "). Use a voice trained with this convention, or set [audio] to match it."
            )


def librosa_center(n_fft: int = 1024, hop_length: int = 256, **kw: Any) -> Convention:
    """librosa's ``center=True`` framing (zero padding of n_fft // 2) for the same sizes."""
    return Convention(
        n_fft=n_fft,
        win_length=kw.pop("win_length", n_fft),
        hop_length=hop_length,
        pad=n_fft // 2,
        pad_mode=kw.pop("pad_mode", "constant"),
        **kw,
    )


DEFAULT = Convention()
