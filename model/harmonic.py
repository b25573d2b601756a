"""The harmonic vocoder: log-mel + frame f0 -> audio through a source-filter model.

A band-limited harmonic source at the f0 given plus white noise (:mod:`dsp.harmonic`), each
shaped frame by frame by a filter a small causal network predicts from the log-mel and the
f0. The pitch heard is the f0 given, by construction; no phase is reconstructed. (pc-ddsp /
DDSP-SVC's "CombSub" is the model studied.) The filters are linear phase over ``phase_taps``
samples (a harmonic's phase stays put as the filter changes: the pitch heard is the f0
given, to 2 cents on sung vowels) or, with ``phase_taps`` 0 (older checkpoints), minimum
phase (a vocal-tract-like phase, but the harmonics' phases move with the formants: 7 cents
of pitch wobble).

What the DSP already knows is the start: each filter's log magnitude is a linear map of the
log-mel initialised to interpolate the mel bands onto the FFT bins (the mel is the
envelope), plus the network's correction; the harmonic filter is silenced in unvoiced
frames (a mask: no buzz in fricatives), the noise filter is free (aperiodicity, breath).

Shapes: log-mel ``(B, n_mels, T)``, f0 ``(B, T)`` Hz (0 = unvoiced); filters ``(B, T, bins)``
complex. :class:`HarmonicNet` is causal at the frame rate and computes every frame to the
same bits however frames are chunked (:func:`model.layers.linear`); ``delay`` of the
vocoder = the synthesis's ``hop + hop / 2 + phase_taps / 2`` samples (17 ms + taps / 2).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

import dsp
from model.harmonic_cpu import F0_REF
from model.layers import Block, CachedConv, bake_weight_norm, frame_conv, linear


def mel_prior(conv: dsp.Convention) -> np.ndarray:
    """``(bins, n_mels)``: each FFT bin as the weighted mean of the mel bands covering it
    (the transposed filterbank, rows normalised); bins no band covers take the nearest."""
    basis = dsp.mel_basis(conv).astype(np.float64)  # (n_mels, bins)
    w = basis.T.copy()
    sums = w.sum(1)
    peaks = basis.argmax(1)  # each band's peak bin
    for k in np.flatnonzero(sums <= 1e-12):
        w[k, int(np.argmin(np.abs(peaks - k)))] = 1.0
    return (w / w.sum(1, keepdims=True)).astype(np.float32)


def minimum_phase(log_mag: torch.Tensor, n_fft: int) -> torch.Tensor:
    """``(..., n_fft // 2 + 1)`` natural-log magnitude -> the minimum-phase complex response
    with that magnitude (folded real cepstrum)."""
    c = torch.fft.irfft(log_mag, n_fft)
    half = n_fft // 2
    fold = torch.ones(n_fft, device=c.device, dtype=c.dtype)
    fold[1:half] = 2.0
    fold[half + 1 :] = 0.0
    return torch.exp(torch.fft.rfft(c * fold))


def linear_phase(log_mag: torch.Tensor, n_fft: int, taps: int) -> torch.Tensor:
    """``(..., n_fft // 2 + 1)`` natural-log magnitude -> a linear-phase response: the
    zero-phase impulse response under a ``taps``-long Hann window, delayed by ``taps / 2``
    (:func:`dsp.harmonic._response`)."""
    ir = torch.fft.irfft(torch.exp(log_mag), n_fft)
    idx = (torch.arange(taps, device=ir.device) - taps // 2) % n_fft
    win = torch.hann_window(taps, periodic=True, device=ir.device, dtype=ir.dtype)
    return torch.fft.rfft(ir[..., idx] * win, n_fft)


def response(log_mag: torch.Tensor, n_fft: int, taps: int) -> torch.Tensor:
    """Minimum phase (``taps`` 0) or linear phase over ``taps`` samples."""
    return minimum_phase(log_mag, n_fft) if taps == 0 else linear_phase(log_mag, n_fft, taps)


class HarmonicNet(nn.Module):
    """Log-mel + f0 frames -> harmonic and noise filters, causal (``lookahead`` 0)."""

    def __init__(self, n_mels: int = 80, bins: int = 513, channels: int = 192,
                 blocks: int = 3, kernel: int = 3, n_fft: int = 1024,
                 sample_rate: int = 22050, fmax: float = 8000.0,
                 phase_taps: int = 0):  # fmt: skip
        super().__init__()
        self.kwargs = {"arch": "harmonic", "n_mels": n_mels, "bins": bins,
                       "channels": channels, "blocks": blocks, "kernel": kernel,
                       "n_fft": n_fft, "sample_rate": sample_rate, "fmax": fmax}  # fmt: skip
        if phase_taps:  # linear-phase filters (0: minimum phase; kwargs of older checkpoints)
            self.kwargs["phase_taps"] = phase_taps
        self.n_fft, self.bins, self.phase_taps = n_fft, bins, phase_taps
        self.pre = CachedConv(n_mels + 2, channels, kernel)
        self.blocks = nn.ModuleList(Block(channels) for _ in range(blocks))
        self.norm = nn.LayerNorm(channels)
        self.head = nn.Linear(channels, 2 * bins)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.skip = nn.Linear(n_mels, 2 * bins)  # the mel as the envelope, refined by training
        conv = dsp.Convention(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fmax=fmax)
        prior = torch.from_numpy(mel_prior(conv))
        with torch.no_grad():
            self.skip.weight.copy_(torch.cat([prior, prior]))
            # slaney mel ~ the band's mean |X| per Hz: |X| ~ mel * bin_hz. A unit harmonic
            # peaks at n_fft / 4 under the analysis window and a band holds bin_hz / f0 of its
            # energy in each peak (the f0 term is added in _filters); unit noise gives
            # sqrt(3 n_fft / 8) per bin, and voiced speech is mostly harmonic (-30 dB)
            bin_hz = sample_rate / n_fft
            self.skip.bias[:bins] = math.log(bin_hz) - math.log(n_fft / 4) - math.log(2 * bin_hz)
            self.skip.bias[bins:] = math.log(bin_hz) - 0.5 * math.log(3 * n_fft / 8) - 3.5

    @staticmethod
    def features(mel: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels + 2, T)``: the log-mel, log f0 (octaves from :data:`F0_REF`, 0 where
        unvoiced) and the voicing flag."""
        voiced = (f0 > 0).to(mel.dtype)
        lf0 = torch.log2(torch.clamp(f0, min=1.0) / F0_REF) * voiced
        return torch.cat([mel, lf0[:, None], voiced[:, None]], 1)

    def _log_filters(self, x: torch.Tensor, mel: torch.Tensor, f0: torch.Tensor):
        """The filters as natural-log magnitudes ``(B, T, bins)`` float32 and the voicing
        ``(B, T)`` that silences the harmonic one."""
        head, skip = self.head, self.skip
        h = linear(self.norm(x.transpose(1, 2)), head.weight, head.bias)
        h = h + linear(mel.transpose(1, 2), skip.weight, skip.bias)
        log_h, log_n = h.float().split(self.bins, -1)
        log_h = log_h + torch.log(torch.clamp(f0, min=1.0)).float()[..., None]  # see __init__
        return log_h.clamp(-20.0, 6.0), log_n.clamp(-20.0, 6.0), f0 > 0

    def _filters(self, x: torch.Tensor, mel: torch.Tensor, f0: torch.Tensor):
        log_h, log_n, voiced = self._log_filters(x, mel, f0)
        taps = self.phase_taps
        harm = response(log_h, self.n_fft, taps) * voiced.float()[..., None]
        return harm, response(log_n, self.n_fft, taps)

    def forward(self, mel: torch.Tensor, f0: torch.Tensor):
        """``(B, n_mels, T)``, ``(B, T)`` -> harmonic and noise responses ``(B, T, bins)``."""
        x = frame_conv(self.pre, self.features(mel, f0))[0]
        for b in self.blocks:
            x = b(x)
        return self._filters(x, mel, f0)

    def initial_state(self, batch: int = 1, device=None) -> dict:
        return {
            "pre": self.pre.init_cache(batch, device),
            "blocks": [b.dw.init_cache(batch, device) for b in self.blocks],
        }

    def _trunk(self, mel: torch.Tensor, f0: torch.Tensor, state: dict | None):
        st = state if state is not None else self.initial_state(mel.shape[0], mel.device)
        x, pre = frame_conv(self.pre, self.features(mel, f0), st["pre"])
        caches = []
        for b, c in zip(self.blocks, st["blocks"], strict=True):
            x, c = b.stream(x, c)
            caches.append(c)
        return x, {"pre": pre, "blocks": caches}

    def stream(self, mel: torch.Tensor, f0: torch.Tensor, state: dict | None = None):
        """A chunk -> its frames' responses (no look-ahead: all of them) and the state."""
        x, st = self._trunk(mel, f0, state)
        return self._filters(x, mel, f0), st

    def stream_log(self, mel: torch.Tensor, f0: torch.Tensor, state: dict | None = None):
        """:meth:`stream` with the filters as :meth:`_log_filters` gives them (inference: the
        synthesis makes them minimum phase, in float64)."""
        x, st = self._trunk(mel, f0, state)
        return self._log_filters(x, mel, f0), st

    def remove_weight_norm(self) -> HarmonicNet:
        return bake_weight_norm(self)


def synthesize(harm_src: torch.Tensor, noise_src: torch.Tensor, harm: torch.Tensor,
               noise: torch.Tensor, hop: int) -> torch.Tensor:  # fmt: skip
    """Training's differentiable twin of :class:`dsp.harmonic.SourceFilter`: sources ``(B,
    (T + 1) * hop)`` (from ``SourceFilter.source`` over T + 1 frames), responses ``(B, T,
    bins)`` -> ``(B, (T + 3) * hop)`` audio from ``c_{-1}``, the first frame's segment start
    (the last ``3 * hop`` samples lack the frames after T)."""
    b, t, bins = harm.shape
    n_fft = 2 * (bins - 1)
    win = torch.hann_window(2 * hop, periodic=True, device=harm.device, dtype=harm_src.dtype)
    segs_h = harm_src.unfold(-1, 2 * hop, hop)[:, :t] * win
    segs_n = noise_src.unfold(-1, 2 * hop, hop)[:, :t] * win
    spec = torch.fft.rfft(segs_h, n_fft) * harm + torch.fft.rfft(segs_n, n_fft) * noise
    y = torch.fft.irfft(spec, n_fft).reshape(b, t, n_fft // hop, hop)
    out = harm_src.new_zeros(b, t + n_fft // hop - 1, hop)
    for j in range(n_fft // hop):
        out[:, j : j + t] += y[:, :, j]
    return out.reshape(b, -1)


class TorchHarmonicNet:
    """A :class:`HarmonicNet` behind :class:`model.harmonic_cpu.CpuHarmonicNet`'s numpy
    interface, on the network's device (a GPU: the daemon's voices batched there)."""

    def __init__(self, net: HarmonicNet):
        self.net = net.eval()
        self.kwargs, self.phase_taps = net.kwargs, net.phase_taps

    @classmethod
    def of(cls, tensors: dict, kwargs: dict, device) -> TorchHarmonicNet:
        net = HarmonicNet(**{k: v for k, v in kwargs.items() if k != "arch"})
        net.load_state_dict({k: torch.as_tensor(v) for k, v in tensors.items()}, strict=True)
        return cls(net.remove_weight_norm().to(device))

    @property
    def device(self):
        return next(self.net.parameters()).device

    def initial_state(self, batch: int = 1) -> dict:
        return self.net.initial_state(batch, self.device)

    @staticmethod
    def join(states: list[dict]) -> dict:
        return {
            "pre": torch.cat([s["pre"] for s in states]),
            "blocks": [torch.cat(c) for c in zip(*(s["blocks"] for s in states), strict=True)],
        }

    @staticmethod
    def part(state: dict) -> list[dict]:
        pres, blocks = state["pre"].split(1), [c.split(1) for c in state["blocks"]]
        return [{"pre": p, "blocks": [c[i] for c in blocks]} for i, p in enumerate(pres)]

    @torch.inference_mode()
    def stream_log(self, mel: np.ndarray, f0: np.ndarray, state: dict | None = None):
        dev = self.device
        m = torch.from_numpy(np.asarray(mel, np.float32)).to(dev)
        f = torch.from_numpy(np.asarray(f0, np.float32)).to(dev)
        (log_h, log_n, voiced), st = self.net.stream_log(m, f, state)
        return (log_h.cpu().numpy(), log_n.cpu().numpy(), voiced.cpu().numpy()), st
