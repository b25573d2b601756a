"""The harmonic vocoder's mel fit: its output pulled toward the mel it was given.

The network's filters miss the input mel by 0.46 nat a band on average (the first eight
bench sentences), partly in the harmonics' levels and partly in what the noise's draw
happens to put in each band. The fit renders the frames once, takes the log-mel of that audio
(:func:`dsp.log_mel`), and renders them again with both filters of frame ``t`` moved by
``step`` times the band differences ``input - rendered`` (each clipped to +-1 nat; the
differences of frames ``t - 1, t, t + 1`` weighted 1/4, 1/2, 1/4; bands interpolated to
the bins between their centres, none above the convention's ``fmax``). Both renders draw
the same noise and oscillator phase, so the second corrects the first's very draw.

Streaming: a frame is fitted once the first render's audio under the mel window of the frame
after it is final, :func:`held` frames later, so a fitted stream's delay is that many hops
more (``ceil((delay + n_fft - pad) / hop)`` = 5, 58 ms more at the default convention); its
samples equal the offline fit's (to float32 rounding), whatever the chunks. Copy-synthesis
of the 20 bench sentences with step 0.5: PESQ-WB 2.69 -> 2.82, STOI 0.958 -> 0.966, DNSMOS
OVRL 2.92 -> 2.87, at about half the speed (docs/results.md). `melgand vocode --mel-fit`
asks for it; a :class:`daemon.synth.Renderer` (live voices, `sing`) turns it off.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

import dsp
from dsp import spectral as _sp

CLIP = 1.0  # nat: the largest band difference a fit follows


@lru_cache(maxsize=8)
def _to_bins(conv: dsp.Convention) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each bin's two bands and their weights: linear between the bands' centres (held
    beyond the first and last), weight 0 above ``fmax``. Two taps, not a matrix product:
    each frame's numbers are the same however many frames come at once."""
    basis = dsp.mel_basis(conv).astype(np.float64)
    freqs = np.arange(conv.n_fft // 2 + 1) * conv.sample_rate / conv.n_fft
    centres = (basis * freqs).sum(1) / np.maximum(basis.sum(1), 1e-12)
    pos = np.interp(freqs, centres, np.arange(conv.n_mels, dtype=np.float64))
    lo = np.minimum(np.floor(pos).astype(np.int64), conv.n_mels - 1)
    hi = np.minimum(lo + 1, conv.n_mels - 1)
    w_hi = pos - lo
    w_lo = 1.0 - w_hi
    off = freqs > conv.fmax
    w_lo[off] = w_hi[off] = 0.0
    return lo, hi, np.stack([w_lo, w_hi])


def held(conv: dsp.Convention, delay: int) -> int:
    """Frames a fitted stream holds back, for a first render of ``delay`` samples."""
    return math.ceil((delay + conv.n_fft - conv.pad) / conv.hop_length)


def differences(mel_in: np.ndarray, mel_out: np.ndarray, conv: dsp.Convention) -> np.ndarray:
    """``(T, bins)`` clipped band differences ``mel_in - mel_out`` (each ``(n_mels, T)``) on
    the bins, unsmoothed."""
    d = np.clip(mel_in.astype(np.float64) - mel_out, -CLIP, CLIP).T
    lo, hi, w = _to_bins(conv)
    return d[:, lo] * w[0] + d[:, hi] * w[1]


def smoothed(d: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Frames ``d`` ``(n, bins)`` weighted 1/4, 1/2, 1/4 with their neighbours, ``before``
    and ``after`` the rows on either side."""
    ext = np.concatenate([before[None], d, after[None]])
    return 0.25 * ext[:-2] + 0.5 * ext[1:-1] + 0.25 * ext[2:]


def padded_window(y: np.ndarray, base: int, start: int, length: int, total: int | None,
                  pad: int) -> np.ndarray:  # fmt: skip
    """Samples ``[start, start + length)`` of the render ``y`` (its samples from ``base``)
    as :func:`dsp.log_mel` pads it (``pad``): reflected before 0 and, once the render's
    ``total`` length is known, after its end."""
    if total is not None and total <= pad:  # shorter than the padding: reflected again
        return np.pad(y[:total], pad, mode="reflect")[start + pad : start + pad + length]
    idx = np.arange(start, start + length)
    idx = np.where(idx < 0, -idx, idx)
    if total is not None:
        idx = np.where(idx >= total, 2 * (total - 1) - idx, idx)
    return y[idx - base]


def mel_frames(y: np.ndarray, base: int, first: int, count: int, total: int | None,
               conv: dsp.Convention) -> np.ndarray:  # fmt: skip
    """Log-mel frames ``first .. first + count - 1`` ``(n_mels, count)`` of the render."""
    hop = conv.hop_length
    n = (count - 1) * hop + conv.n_fft
    seg = padded_window(y, base, first * hop - conv.pad, n, total, conv.pad)
    win = _sp.window(conv.n_fft, conv.win_length)
    return dsp.mel.log_mel_padded(seg.astype(np.float32), count, win.astype(np.float32), conv)


def offline_moves(mel_in: np.ndarray, y: np.ndarray, conv: dsp.Convention) -> np.ndarray:
    """The smoothed differences ``(T, bins)`` of a whole render ``y`` from ``mel_in`` ``(n_mels,
    T)``: what :class:`FitState` gives a stream frame by frame."""
    t = mel_in.shape[1]
    d = differences(mel_in, mel_frames(y, 0, 0, t, y.size, conv), conv)
    return smoothed(d, d[0], d[-1])


class FitState:
    """One fitted stream: the two renders' source states, the first render's samples still
    needed (from ``base``), and the frames taken in but not yet released to the second."""

    def __init__(self, step: float) -> None:
        self.step = step  # the fit's, fixed for the stream
        self.first = self.second = None
        self.y, self.base, self.total = np.zeros(0, np.float32), 0, None
        self.frames = self.done = self.fitted = 0  # taken in, released, differences known
        self.pend: list[np.ndarray] | None = None  # mel (n_mels, n), f0, log_h, log_n, voiced
        self.d: np.ndarray | None = None  # differences of frames done .. fitted - 1
        self.prev: np.ndarray | None = None  # the difference of frame done - 1

    def add(self, mel, f0, log_h, log_n, voiced, y: np.ndarray) -> None:
        new = [mel, np.asarray(f0, np.float64), log_h, log_n, np.asarray(voiced, bool)]
        if self.pend is None:
            self.pend = new
        else:
            self.pend = [np.concatenate([a, b], axis=-1 if i == 0 else 0)
                         for i, (a, b) in enumerate(zip(self.pend, new, strict=True))]  # fmt: skip
        self.frames += len(f0)
        self.y = np.concatenate([self.y, y])

    def add_end(self, y: np.ndarray) -> None:
        """The first render's last samples: its length is known."""
        self.y = np.concatenate([self.y, y])
        self.total = self.base + self.y.size

    def fit_ready(self, conv: dsp.Convention) -> int:
        """The frames now fitted (their mel frames and the next one's known), to release."""
        hop, avail = conv.hop_length, self.base + self.y.size
        if self.total is not None:
            stop = self.frames
        else:
            stop = min(self.frames, (avail - conv.n_fft + conv.pad) // hop + 1)
        if stop > self.fitted:
            k = stop - self.fitted
            out = mel_frames(self.y, self.base, self.fitted, k, self.total, conv)
            a = self.fitted - self.done
            d = differences(self.pend[0][:, a : a + k], out, conv)
            self.d = d if self.d is None else np.concatenate([self.d, d])
            self.fitted = stop
        if self.total is not None:
            return self.frames - self.done
        return max(0, self.fitted - 1 - self.done)

    def release(self, r: int, conv: dsp.Convention):
        """The next ``r`` frames' ``f0, log_h, log_n, voiced`` and their smoothed
        differences; dropped here, with the samples no frame to come needs."""
        d = self.d
        before = self.prev if self.prev is not None else d[0]
        after = d[r] if r < len(d) else d[r - 1]
        move = smoothed(d[:r], before, after)
        self.prev, self.d = d[r - 1], d[r:]
        _, f0, lh, ln, hv = self.pend
        self.pend = [self.pend[0][:, r:], f0[r:], lh[r:], ln[r:], hv[r:]]
        self.done += r
        keep = max(0, self.fitted * conv.hop_length - conv.pad)
        if keep > self.base:
            self.y, self.base = self.y[keep - self.base :], keep
        return f0[:r], lh[:r], ln[:r], hv[:r], move
