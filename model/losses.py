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
