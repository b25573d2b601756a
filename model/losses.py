"""Spectral losses: the multi-resolution STFT ("GSTF") loss of the design and a mel L1.

Each resolution contributes spectral convergence (``||S - S_hat||_F / ||S||_F``) and the L1
distance of log magnitudes; the default resolutions are the design's (fft, hop, win):
(1024, 120, 600), (2048, 240, 1200), (512, 50, 240).
"""

from __future__ import annotations

import torch
from torch import nn

RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))


def _mag(x: torch.Tensor, fft: int, hop: int, win: torch.Tensor) -> torch.Tensor:
    spec = torch.stft(x.float(), fft, hop, win.shape[0], win, return_complex=True)
    return spec.abs().clamp(min=1e-7)


class MultiResolutionSTFTLoss(nn.Module):
    def __init__(self, resolutions=RESOLUTIONS):
        super().__init__()
        self.resolutions = [tuple(r) for r in resolutions]
        for fft, hop, win in self.resolutions:
            self.register_buffer(f"win_{fft}_{hop}_{win}", torch.hann_window(win))

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(spectral convergence, log-magnitude L1)``, each averaged over resolutions."""
        sc = mag = y.new_zeros(())
        for fft, hop, win in self.resolutions:
            w = getattr(self, f"win_{fft}_{hop}_{win}")
            s, s_hat = _mag(y, fft, hop, w), _mag(y_hat, fft, hop, w)
            sc = sc + torch.linalg.norm(s - s_hat) / torch.linalg.norm(s)
            mag = mag + (s.log() - s_hat.log()).abs().mean()
        n = len(self.resolutions)
        return sc / n, mag / n


class LogMel(nn.Module):
    """Log-mel of audio under the audio convention, in torch (for the mel L1 term)."""

    def __init__(self, conv):
        super().__init__()
        import dsp

        self.conv = conv
        self.register_buffer("basis", torch.tensor(dsp.mel_basis(conv), dtype=torch.float32))
        self.register_buffer("window", torch.hann_window(conv.win_length))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        c = self.conv
        x = torch.nn.functional.pad(audio[:, None].float(), (c.pad, c.pad), mode=c.pad_mode)[:, 0]
        spec = torch.stft(x, c.n_fft, c.hop_length, c.win_length, self.window, center=False,
                          return_complex=True).abs()  # fmt: skip
        return torch.log(torch.clamp(self.basis @ spec, min=1e-5))


def frame_log_magnitude(audio: torch.Tensor, conv, window: torch.Tensor) -> torch.Tensor:
    """Natural-log STFT magnitude ``(B, n_bins, frames)`` of ``audio`` framed without padding
    (the caller pads it as the mel analysis did), floored at the convention's log clamp."""
    spec = torch.stft(audio.float(), conv.n_fft, conv.hop_length, conv.win_length, window,
                      center=False, return_complex=True)  # fmt: skip
    return spec.abs().clamp(min=conv.log_clamp).log()


def harmonic_basis(f0: torch.Tensor, sample_rate: float, win: int, fmax: float,
                   k_max: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Hann-windowed cosines and sines ``(B, M, K, win)`` at harmonics ``1..k_max`` of each
    frame's f0 ``(B, M)`` Hz, and the mask ``(B, M, K)`` of those below ``fmax`` in voiced
    frames; sample ``win / 2`` of a window is its centre."""
    n = torch.arange(win, device=f0.device, dtype=torch.float32) - win / 2
    w = torch.hann_window(win, periodic=False, device=f0.device)
    ks = torch.arange(1, k_max + 1, device=f0.device, dtype=torch.float32)
    freqs = f0.float()[..., None] * ks
    arg = 2 * torch.pi * freqs[..., None] * n / sample_rate
    return torch.cos(arg) * w, torch.sin(arg) * w, (f0[..., None] > 0) & (freqs < fmax)


def harmonic_levels(audio: torch.Tensor, basis: tuple, hop: int) -> torch.Tensor:
    """``(B, M, K)`` magnitudes of the harmonics :func:`harmonic_basis` describes in ``audio``
    ``(B, N)``, frame ``m`` being samples ``[m * hop, m * hop + win)``."""
    cos, sin, _ = basis
    frames = audio.float().unfold(-1, cos.shape[-1], hop)[:, : cos.shape[1], None, :]
    re, im = (frames * cos).sum(-1), (frames * sin).sum(-1)
    return torch.sqrt(re * re + im * im + 1e-10)


def harmonic_level_loss(y: torch.Tensor, target: torch.Tensor, f0: torch.Tensor, hop: int,
                        sample_rate: float, win: int = 1024,
                        fmax: float = 2000.0) -> torch.Tensor:  # fmt: skip
    """L1 of the log magnitudes of the harmonics below ``fmax`` of ``y`` against ``target``
    at the f0 given (frame ``m`` of ``f0`` centred on sample ``m * hop + win / 2``): the
    harmonic vocoder's copies lose PESQ below 1 kHz in the harmonics' levels
    (bench/bench_phase.py), which the STFT losses weigh little against the bins above."""
    m = min((y.shape[-1] - win) // hop + 1, f0.shape[1])
    basis = harmonic_basis(f0[:, :m], sample_rate, win, fmax)
    a = harmonic_levels(y, basis, hop)
    with torch.no_grad():
        b = harmonic_levels(target, basis, hop)
    diff = (torch.log(a + 1e-5) - torch.log(b + 1e-5)).abs()
    mask = basis[2]
    return (diff * mask).sum() / mask.sum().clamp(min=1)
