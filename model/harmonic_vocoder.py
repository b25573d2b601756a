"""The harmonic vocoder behind the vocoder interface: the network's filters
(:class:`model.harmonic_cpu.CpuHarmonicNet` on the CPU, no torch; a torch
:class:`model.harmonic.HarmonicNet` on a GPU) and the source-filter synthesis of
:class:`dsp.harmonic.SourceFilter`. ``(n_mels, T)`` log-mel and ``(T,)`` f0 (Hz, 0 =
unvoiced) in, float32 audio out; ``stream`` / ``stream_many`` / ``flush``; ``delay`` in
samples. A singer's breathiness and a gate on the noise of near-silent frames are applied
to the filters here, frame by frame (streaming unchanged); ``mel_fit`` renders twice, the
second time pulled toward the input mel (:mod:`model.mel_fit`; more delay when streaming).
"""

from __future__ import annotations

import math

import numpy as np

import dsp
from dsp.harmonic import SourceFilter
from model import mel_fit as _fit
from model.harmonic_cpu import CpuHarmonicNet

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


def engine(net):
    """The network's inference from ``net``: a CPU or torch engine as it is, or a torch
    ``HarmonicNet`` (a CPU engine of its weights; on a GPU, wrapped where it is)."""
    if hasattr(net, "stream_log") and hasattr(net, "join"):
        return net
    if next(net.parameters()).device.type != "cpu":
        from model.harmonic import TorchHarmonicNet

        return TorchHarmonicNet(net)
    tensors = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    return CpuHarmonicNet(tensors, net.kwargs)


class HarmonicVocoder:
    """See the module docstring. ``net``: see :func:`engine`."""

    needs_f0 = True

    def __init__(self, net, conv: dsp.Convention, header: dict, seed: int = 0,
                 noise_gate: float | None = None, mel_fit: float = 0.0):  # fmt: skip
        self.net = engine(net)
        self.conv, self.header = conv, header
        self.source = SourceFilter(conv, seed=seed, taps=self.net.phase_taps)
        self.noise_gate = noise_gate
        self.mel_fit = mel_fit

    @property
    def mel_fit(self) -> float:
        """The fit's step (0: one render, :mod:`model.mel_fit`); set it between streams."""
        return self._mel_fit

    @mel_fit.setter
    def mel_fit(self, step: float) -> None:
        if not 0.0 <= step <= 1.0:
            raise ValueError(f"mel_fit must be a step in 0..1 (0 = off); got {step}")
        self._mel_fit = float(step)
        held = _fit.held(self.conv, self.source.delay) if step else 0
        self.delay = self.source.delay + held * self.conv.hop_length

    def to(self, device) -> HarmonicVocoder:
        """On ``device``: the CPU engine on the CPU, the torch network on a GPU."""
        on_cpu = isinstance(self.net, CpuHarmonicNet)
        if str(device).startswith("cpu"):
            if not on_cpu:
                self.net = engine(self.net.net.cpu())
        elif on_cpu:
            from model.harmonic import TorchHarmonicNet

            self.net = TorchHarmonicNet.of(self.net.tensors, self.net.kwargs, device)
        else:
            self.net.net.to(device)
        return self

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

    def _gate(self, log_n: np.ndarray, mel: np.ndarray) -> np.ndarray:
        """The noise filter ``(B, T, bins)`` of near-silent frames (mean log-mel ``(B,
        n_mels, T)`` below ``noise_gate``) lowered, by up to 20 dB a nat below it: the
        network leaves a faint hiss in pauses (DNSMOS OVRL 2.86 -> 2.93, BAK 3.96 -> 4.02
        on eight held-out sentences). Frame by frame, so streaming is unchanged."""
        if self.noise_gate is None:
            return log_n
        quiet = np.clip(mel.mean(1) - self.noise_gate, -1.0, 0.0) * math.log(10.0)
        return (log_n + quiet[..., None]).astype(log_n.dtype)

    def _filters(self, mels: np.ndarray, f0s: np.ndarray, state, breath=0.0):
        """The network on stacked streams ``(B, n_mels, T)``, ``(B, T)`` -> the log filters
        ``(B, T, bins)`` as sounded (breath, gate), the voicing ``(B, T)``, the state."""
        (log_h, log_n, voiced), st = self.net.stream_log(mels, f0s, state)
        log_h, log_n = breathe(log_h, log_n, breath)
        return log_h, self._gate(log_n, mels), voiced, st

    def filters(self, log_mel, f0) -> tuple[np.ndarray, np.ndarray]:
        """The harmonic and noise responses ``(T, bins)`` (complex) for the whole input, as
        the synthesis applies them."""
        mel, f0 = self._check(log_mel, f0)
        log_h, log_n, voiced, _ = self._filters(mel[None], f0[None], None)
        return self.source.responses(log_h[0], log_n[0], voiced[0])

    def __call__(self, log_mel, f0=None, breath: float = 0.0) -> np.ndarray:
        mel, f0 = self._check(log_mel, f0)
        log_h, log_n, voiced, _ = self._filters(mel[None], f0[None], None, breath)
        y = self.source.offline_log(f0, log_h[0], log_n[0], voiced[0])
        if not self.mel_fit:
            return y
        move = (self.mel_fit * _fit.offline_moves(mel, y, self.conv)).astype(log_h.dtype)
        return self.source.offline_log(f0, log_h[0] + move, log_n[0] + move, voiced[0])

    def stream(self, log_mel, state: tuple | None = None, f0=None,
               breath: float = 0.0) -> tuple[np.ndarray, tuple]:  # fmt: skip
        mel, f0 = self._check(log_mel, f0)
        ns, ss = state if state is not None else (None, None)
        log_h, log_n, voiced, ns = self._filters(mel[None], f0[None], ns, breath)
        if ss is None and self.mel_fit:  # a stream keeps the path it started on
            ss = _fit.FitState(self.mel_fit)
        if isinstance(ss, _fit.FitState):
            return self._fit_stream(ss, mel, f0, log_h[0], log_n[0], voiced[0]), (ns, ss)
        ys, sss = self.source.stream_many([f0], log_h, log_n, voiced, [ss])
        return ys[0], (ns, sss[0])

    def _fit_stream(self, st, mel, f0, log_h, log_n, voiced, flush: bool = False) -> np.ndarray:
        """One fitted stream's chunk (or its end): the first render, the frames whose fit is
        now known released to the second."""
        src, conv = self.source, self.conv
        ys, (st.first,) = src.stream_many([f0], log_h[None], log_n[None], voiced[None],
                                          [st.first])  # fmt: skip
        st.add(mel, f0, log_h, log_n, voiced, ys[0])
        if flush:
            st.add_end(src.flush(st.first))
        ready = st.fit_ready(conv)
        if not ready:
            return src.flush(st.second) if flush else np.zeros(0, np.float32)
        f0s, lh, ln, hv, move = st.release(ready, conv)
        move = (st.step * move).astype(lh.dtype)
        ys, (st.second,) = src.stream_many([f0s], (lh + move)[None], (ln + move)[None], hv[None],
                                           [st.second])  # fmt: skip
        return np.concatenate([ys[0], src.flush(st.second)]) if flush else ys[0]

    def stream_many(self, mels: list, states: list, pool=None, f0s=None, breaths=None) -> list:
        """:meth:`stream` for several voices' chunks of one length: the network once for
        all of them, the synthesis in one kernel call (split over ``pool``'s threads: it
        releases the GIL); fitted voices one after another (:meth:`_fit_many`)."""
        checked = [self._check(m, f) for m, f in zip(mels, f0s, strict=True)]
        ns = [s[0] if s is not None else None for s in states]
        if any(s is None for s in ns):
            init = self.net.initial_state(1)
            ns = [s if s is not None else init for s in ns]
        f0 = np.stack([f0 for _, f0 in checked])
        b = np.zeros(len(mels)) if breaths is None else np.asarray(breaths, np.float64)
        log_h, log_n, voiced, new = self._filters(
            np.stack([mel for mel, _ in checked]), f0, self.net.join(ns), b[:, None, None]
        )
        old = [s[1] if s is not None else None for s in states]
        if self.mel_fit or any(isinstance(s, _fit.FitState) for s in old):
            return self._fit_many(checked, old, self.net.part(new), log_h, log_n, voiced)
        ys, sss = self.source.stream_many(list(f0), log_h, log_n, voiced, old, pool=pool)
        return [(y, (n, ss)) for y, n, ss in zip(ys, self.net.part(new), sss, strict=True)]

    def _fit_many(self, checked, old, nets, log_h, log_n, voiced) -> list:
        """:meth:`stream_many`'s synthesis where a fit is on or under way: each voice on
        its own, a fitted stream fitted, one that started plain kept plain."""
        out = []
        for i, ((mel, f), st, n) in enumerate(zip(checked, old, nets, strict=True)):
            if st is None and self.mel_fit:
                st = _fit.FitState(self.mel_fit)
            if isinstance(st, _fit.FitState):
                y = self._fit_stream(st, mel, f, log_h[i], log_n[i], voiced[i])
            else:
                ys, (st,) = self.source.stream_many([f], log_h[i : i + 1], log_n[i : i + 1],
                                                    voiced[i : i + 1], [st])  # fmt: skip
                y = ys[0]
            out.append((y, (n, st)))
        return out

    def flush(self, state: tuple | None) -> np.ndarray:
        ss = state[1] if state is not None else None
        if isinstance(ss, _fit.FitState):
            none = np.zeros((0, self.conv.n_fft // 2 + 1), np.float32)
            mel = np.zeros((self.conv.n_mels, 0), np.float32)
            return self._fit_stream(ss, mel, np.zeros(0), none, none, np.zeros(0, bool), True)
        return self.source.flush(ss)
