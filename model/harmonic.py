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
from dsp.harmonic import SourceFilter
from model.layers import Block, CachedConv, TorchVocoder, bake_weight_norm, frame_conv, linear

F0_REF = 200.0  # Hz: log f0 is fed as octaves from this


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


BREATH_NOISE_DB, BREATH_HARMONIC_DB = 18.0, -8.0  # at breath 1


def breathe(log_h: np.ndarray, log_n: np.ndarray, breath) -> tuple[np.ndarray, np.ndarray]:
    """Breathiness 0..1 (a singer's control): the noise filter raised by up to
    :data:`BREATH_NOISE_DB`, the harmonic one lowered by up to :data:`BREATH_HARMONIC_DB`."""
    if np.all(np.asarray(breath) == 0):
        return log_h, log_n
    ln10 = math.log(10.0) / 20.0
    b = np.clip(breath, 0.0, 1.0)
    return (log_h + (BREATH_HARMONIC_DB * ln10 * b)).astype(log_h.dtype), (
        log_n + (BREATH_NOISE_DB * ln10 * b)
    ).astype(log_n.dtype)


class HarmonicVocoder(TorchVocoder):
    """:class:`HarmonicNet` and :class:`dsp.harmonic.SourceFilter` behind the vocoder
    interface: ``(n_mels, T)`` log-mel and ``(T,)`` f0 (Hz, 0 = unvoiced) in, float32 audio
    out; ``stream`` / ``stream_many`` / ``flush``; ``delay`` in samples."""

    needs_f0 = True

    def __init__(self, net: HarmonicNet, conv: dsp.Convention, header: dict, seed: int = 0,
                 noise_gate: float | None = None):  # fmt: skip
        self.source = SourceFilter(conv, seed=seed, taps=net.phase_taps)
        self.noise_gate = noise_gate
        super().__init__(net, conv, header, self.source.delay)

    def _check(self, log_mel, f0) -> tuple[np.ndarray, np.ndarray]:
        mel = np.asarray(log_mel, np.float32)
        c = self.conv
        if mel.ndim != 2 or mel.shape[0] != c.n_mels:
            raise ValueError(f"log-mel must be (n_mels={c.n_mels}, frames); got shape {mel.shape}")
        floor = math.log(c.log_clamp)
        if not np.isfinite(mel).all() or mel.min() < floor - 10.0 or mel.max() > 10.0:
            raise ValueError(
                "log-mel must be finite natural-log magnitudes clamped at "
                f"log({c.log_clamp}) = {floor:.2f} (the convention's dsp.log_mel); got "
                f"{mel.min():.3g}..{mel.max():.3g}: a power or dB mel? convert it first"
            )
        mel = np.maximum(mel, floor)  # a generated or tilted mel dips below the clamp
        if f0 is None:
            raise ValueError(
                "the harmonic vocoder needs the frame f0 (Hz, 0 = unvoiced): pass f0=, e.g. "
                "dsp.yin(audio)[0] for analysed audio"
            )
        f0 = np.asarray(f0, np.float64)
        if f0.shape != (mel.shape[1],):
            raise ValueError(f"f0 must be ({mel.shape[1]},) to match the mel; got {f0.shape}")
        return mel, self.source.check_f0(f0)

    def _f0(self, f0: np.ndarray, device) -> torch.Tensor:
        return torch.from_numpy(f0.astype(np.float32)).to(device)

    def _run_net(self, mel: np.ndarray, f0: np.ndarray, state: dict | None = None):
        m = self._in(mel)
        (harm, noise), ns = self.net.stream(m, self._f0(f0, m.device)[None], state)
        return harm[0].cpu().numpy(), noise[0].cpu().numpy(), ns

    def _run_log(self, mel: np.ndarray, f0: np.ndarray, state: dict | None = None,
                 breath: float = 0.0):  # fmt: skip
        """The network on one stream -> log filters ``(1, T, bins)``, voicing, its state."""
        m = self._in(mel)
        (log_h, log_n, voiced), ns = self.net.stream_log(m, self._f0(f0, m.device)[None], state)
        log_h, log_n = breathe(log_h.cpu().numpy(), log_n.cpu().numpy(), breath)
        return log_h, self._gate(log_n, mel[None]), voiced.cpu().numpy(), ns

    def _gate(self, log_n: np.ndarray, mel: np.ndarray) -> np.ndarray:
        """The noise filter ``(B, T, bins)`` of near-silent frames (mean log-mel ``(B,
        n_mels, T)`` below ``noise_gate``) lowered, by up to 20 dB a nat below it: the
        network leaves a faint hiss in pauses (DNSMOS OVRL 2.86 -> 2.93, BAK 3.96 -> 4.02
        on eight held-out sentences). Frame by frame, so streaming is unchanged."""
        if self.noise_gate is None:
            return log_n
        quiet = np.clip(mel.mean(1) - self.noise_gate, -1.0, 0.0) * math.log(10.0)
        return (log_n + quiet[..., None]).astype(log_n.dtype)

    @torch.inference_mode()
    def filters(self, log_mel, f0) -> tuple[np.ndarray, np.ndarray]:
        """The network's harmonic and noise responses ``(T, bins)`` for the whole input."""
        mel, f0 = self._check(log_mel, f0)
        harm, noise, _ = self._run_net(mel, f0)
        return harm, noise

    @torch.inference_mode()
    def __call__(self, log_mel, f0=None, breath: float = 0.0) -> np.ndarray:
        mel, f0 = self._check(log_mel, f0)
        log_h, log_n, voiced, _ = self._run_log(mel, f0, breath=breath)
        return self.source.offline_log(f0, log_h[0], log_n[0], voiced[0])

    @torch.inference_mode()
    def stream(self, log_mel, state: tuple | None = None, f0=None,
               breath: float = 0.0) -> tuple[np.ndarray, tuple]:  # fmt: skip
        mel, f0 = self._check(log_mel, f0)
        ns, ss = state if state is not None else (None, None)
        log_h, log_n, voiced, ns = self._run_log(mel, f0, ns, breath)
        ys, sss = self.source.stream_many([f0], log_h, log_n, voiced, [ss])
        return ys[0], (ns, sss[0])

    @torch.inference_mode()
    def stream_many(self, mels: list, states: list, pool=None, f0s=None, breaths=None) -> list:
        """:meth:`stream` for several voices' chunks of one length: the network once for
        all of them, the synthesis in one kernel call (split over ``pool``'s threads: it
        releases the GIL)."""
        checked = [self._check(m, f) for m, f in zip(mels, f0s, strict=True)]
        ns = [s[0] if s is not None else None for s in states]
        dev = next(self.net.parameters()).device
        if any(s is None for s in ns):
            init = self.net.initial_state(1, dev)
            ns = [s if s is not None else init for s in ns]
        joined = {
            "pre": torch.cat([s["pre"] for s in ns]),
            "blocks": [torch.cat(c) for c in zip(*(s["blocks"] for s in ns), strict=True)],
        }
        m = torch.from_numpy(np.stack([mel for mel, _ in checked])).to(dev)
        f0 = np.stack([f0 for _, f0 in checked])
        (log_h, log_n, voiced), new = self.net.stream_log(m, self._f0(f0, dev), joined)
        b = np.zeros(len(mels)) if breaths is None else np.asarray(breaths, np.float64)
        log_h, log_n = breathe(log_h.cpu().numpy(), log_n.cpu().numpy(), b[:, None, None])
        log_n = self._gate(log_n, m.cpu().numpy())
        ys, sss = self.source.stream_many(
            list(f0), log_h, log_n, voiced.cpu().numpy(),
            [s[1] if s is not None else None for s in states], pool=pool,
        )  # fmt: skip
        pres = new["pre"].split(1)
        blocks = [c.split(1) for c in new["blocks"]]
        return [
            (y, ({"pre": pres[i], "blocks": [c[i] for c in blocks]}, ss))
            for i, (y, ss) in enumerate(zip(ys, sss, strict=True))
        ]

    def flush(self, state: tuple | None) -> np.ndarray:
        return self.source.flush(state[1] if state is not None else None)
