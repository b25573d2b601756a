"""Where the harmonic vocoder's PESQ-WB goes: its copy-synthesis taken apart.

    .venv/bin/python bench/bench_phase.py [--sentences 8] [--vocoder harmonic|CHECKPOINT]

On the bench_voice sentences rendered by Festival (in no corpus), as bench_vocoder copies
them (log-mel + ``dsp.yin`` f0), PESQ-WB against the original of:

- the copy as it is, and RTISI-LA's copy of the same mel (the phase-blind reference);
- the copy's STFT magnitude under the original's phase, and the original's magnitude under
  the copy's phase (each half alone; an inconsistent STFT, so an estimate);
- the copy with one part changed: its voiced frames' noise left out, its harmonic filters
  made minimum phase (the same magnitudes, the phase a vocal tract's and the teacher's
  MLSA filter's), YIN's f0 smoothed (a 5-frame mean of log f0 in each voiced run);
- the copy copied again by the same vocoder (its own audio, whose f0 is known exactly):
  with the f0 it was made with, that f0 5 cents sharp, and ``dsp.yin``'s f0 of it. Both
  renders start their oscillator at the same phase and draw the same noise, so the exact
  f0 also gives the same harmonic phases and noise;
- the copy rendered again from its own filters with another noise seed, judged against
  itself: what the noise's randomness alone costs;
- oracles that take from the original: the copy below 1 kHz with the original above, and the
  reverse; the copy's harmonic filters corrected so that its first 40 harmonics have the
  original's levels (measured on 4 periods at each frame centre); its harmonic part moved
  in time, frame by frame, so that its first harmonic's phase is the original's (its pulses
  on the original's).

A synthetic phase is what PESQ punishes; these rows say how much of it is the harmonics'
frequency track (the f0 to a few cents), the noise and the rest.
"""

from __future__ import annotations

import argparse

import librosa
import numpy as np
import soxr
import torch
from bench_voice import SENTENCES, festival

import dsp
from daemon import config
from dsp.harmonic import SourceFilter
from model import registry
from model.harmonic import minimum_phase
from trainer.vocoder import quality


def _stft(y: np.ndarray, conv) -> np.ndarray:
    return librosa.stft(y, n_fft=conv.n_fft, hop_length=conv.hop_length)


def _istft(spec: np.ndarray, conv, n: int) -> np.ndarray:
    return librosa.istft(spec, hop_length=conv.hop_length, length=n)


def _voiced_runs(f0: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of voiced frames."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], f0 > 0, [0]]).astype(int)))
    return list(zip(edges[::2], edges[1::2], strict=True))


def _smooth(f0: np.ndarray, width: int = 5) -> np.ndarray:
    """A ``width``-frame moving mean of log f0 inside each voiced run (ends held)."""
    out = f0.copy()
    for a, b in _voiced_runs(f0):
        lf = np.pad(np.log(f0[a:b].astype(np.float64)), width // 2, mode="edge")
        out[a:b] = np.exp(np.convolve(lf, np.ones(width) / width, "valid"))
    return out


def _min_phase(h: np.ndarray, source) -> np.ndarray:
    """Complex responses ``(T, bins)`` -> the same magnitudes, minimum phase, delayed as the
    linear-phase ones are (the synthesis moves its output back by ``taps / 2``)."""
    log_mag = torch.from_numpy(np.log(np.maximum(np.abs(h), 1e-9)))
    k = np.arange(h.shape[1])
    shift = np.exp(-2j * np.pi * k * (source.taps // 2) / source.n_fft)
    silent = np.abs(h).max(1, keepdims=True) == 0
    return np.where(silent, 0, minimum_phase(log_mag, source.n_fft).numpy() * shift)


def variants(voc, y: np.ndarray, mel: np.ndarray, f0: np.ndarray, h: np.ndarray,
             filters: tuple) -> dict:  # fmt: skip
    """The copy ``h`` (made with ``filters``, the vocoder's responses) with one part changed,
    and its noise alone; PESQ-WB of each."""
    sr, src, n = voc.conv.sample_rate, voc.source, len(y)
    hh, hn = filters
    voiced = (f0 > 0)[:, None]
    out = {
        "copy, voiced frames' noise left out": src(f0, hh, np.where(voiced, 0, hn)),
        "copy, harmonic filters minimum phase": src(f0, _min_phase(hh, src), hn),
        "copy, YIN's f0 smoothed over 5 frames": voc(mel, f0=_smooth(f0)),
    }
    got = {k: quality(y, np.asarray(v, np.float32)[:n], sr)["pesq_wb"] for k, v in out.items()}
    other = SourceFilter(voc.conv, seed=src.seed + 7, taps=src.taps)
    again = np.asarray(other(f0, hh, hn), np.float32)
    got["its own audio against itself, another noise seed"] = quality(h, again, sr)["pesq_wb"]
    return got


def _harmonics(x: np.ndarray, f0: np.ndarray, conv, k: int = 40) -> np.ndarray:
    """``(T, k)`` complex amplitudes of harmonics 1..k at each voiced frame's centre (a Hann
    window of 4 periods; NaN where unvoiced, over the edge or above Nyquist)."""
    hop, sr = conv.hop_length, conv.sample_rate
    out = np.full((len(f0), k), np.nan, complex)
    for t in np.flatnonzero(f0 > 0):
        n = np.arange(-int(2 * sr / f0[t]), int(2 * sr / f0[t]))
        i = t * hop + hop // 2 + n
        if i[0] >= 0 and i[-1] < len(x):
            seg = x[i] * np.hanning(len(n))
            ks = np.arange(1, k + 1)[: int(sr / 2 / f0[t])]
            out[t, : len(ks)] = np.exp(-2j * np.pi * np.outer(ks, n) * f0[t] / sr) @ seg
    return out


def oracles(voc, y: np.ndarray, f0: np.ndarray, h: np.ndarray, filters: tuple) -> dict:
    """The copy ``h`` (made with ``filters``) helped by the original (see the module's
    text); PESQ-WB of each."""
    conv, src = voc.conv, voc.source
    sr, bins = conv.sample_rate, np.arange(conv.n_fft // 2 + 1)
    f = np.fft.rfftfreq(len(y), 1 / sr)
    low = lambda x: np.fft.irfft(np.fft.rfft(x) * (f < 1000), len(x))  # noqa: E731
    out = {"copy below 1 kHz, the original above": low(h) + y - low(y),
           "the original below 1 kHz, the copy above": low(y) + h - low(h)}  # fmt: skip
    hh, hn = filters
    a = _harmonics(y, f0, conv)
    harm = np.asarray(src(f0, hh, np.zeros_like(hn)), np.float64)[: len(y)]
    b = _harmonics(harm, f0, conv)
    fixed = hh.copy()
    for t in np.flatnonzero(~np.isnan(a[:, 0]) & ~np.isnan(b[:, 0])):
        ok = ~np.isnan(a[t]) & ~np.isnan(b[t])
        db = np.clip(20 * np.log10(np.abs(a[t, ok]) / np.maximum(np.abs(b[t, ok]), 1e-12)), -12, 12)
        fk = f0[t] * np.arange(1, ok.sum() + 1)
        fixed[t] *= 10 ** (np.interp(bins * sr / conv.n_fft, fk, db) / 20)
    out["harmonic levels matched to the original's"] = src(f0, fixed, hn)
    turn = np.nan_to_num(np.angle(b[:, 0] * np.conj(a[:, 0])))  # how far the copy leads
    for s0, s1 in _voiced_runs(f0):  # continuous in each voiced run
        u = np.unwrap(turn[s0:s1])
        turn[s0:s1] = u - 2 * np.pi * np.round(np.median(u) / (2 * np.pi))
    lag = np.clip(turn / (2 * np.pi * np.maximum(f0, 1.0)) * sr, -200, 200)
    moved = hh * np.exp(-2j * np.pi * bins[None, :] * lag[:, None] / conv.n_fft)
    out["pulses moved onto the original's"] = src(f0, moved, hn)
    n = len(y)
    return {k: quality(y, np.asarray(v, np.float32)[:n], sr)["pesq_wb"] for k, v in out.items()}


def rows(voc, rtisi, y: np.ndarray, conv) -> dict[str, float]:
    """PESQ-WB of each row for one clip ``y``."""
    sr = conv.sample_rate
    mel, f0 = dsp.vocoder_inputs(y, conv)
    h = np.asarray(voc(mel, f0=f0), np.float32)
    n = min(len(y), len(h))
    y, h = y[:n], h[:n]
    ys, hs = _stft(y, conv), _stft(h, conv)
    out = {
        "copy (YIN f0)": h,
        "RTISI-LA copy of the same mel": np.asarray(rtisi(mel), np.float32)[:n],
        "copy's magnitude, original's phase": _istft(
            np.abs(hs) * np.exp(1j * np.angle(ys)), conv, n
        ),
        "original's magnitude, copy's phase": _istft(
            np.abs(ys) * np.exp(1j * np.angle(hs)), conv, n
        ),
    }
    got = {k: quality(y, v, sr)["pesq_wb"] for k, v in out.items()}
    filters = voc.filters(mel, f0)
    got.update(variants(voc, y, mel, f0, h, filters))
    got.update(oracles(voc, y, f0, h, filters))
    mel2, f0_yin = dsp.vocoder_inputs(h, conv)
    exact = f0[: mel2.shape[1]]
    for name, f in [("copy of the copy, its exact f0", exact),
                    ("copy of the copy, exact f0 + 5 cents", exact * 2.0 ** (5 / 1200)),
                    ("copy of the copy, YIN's f0 of it", f0_yin)]:  # fmt: skip
        again = np.asarray(voc(mel2, f0=f), np.float32)
        m = min(len(h), len(again))
        got[name] = quality(h[:m], again[:m], sr)["pesq_wb"]
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=8)
    ap.add_argument("--vocoder", default="harmonic", help="harmonic or a checkpoint")
    args = ap.parse_args()
    torch.set_num_threads(2)
    conv = config.load().audio
    voc = registry.load(args.vocoder, conv)
    rtisi = dsp.DspVocoder(conv, "rtisi")
    table: dict[str, list[float]] = {}
    for s in SENTENCES[: args.sentences]:
        y, sr = festival(s)
        y = soxr.resample(y, sr, conv.sample_rate).astype(np.float32)
        y = y[: len(y) // conv.hop_length * conv.hop_length]
        for k, v in rows(voc, rtisi, y, conv).items():
            table.setdefault(k, []).append(v)
    print(f"# PESQ-WB, {args.sentences} held-out Festival sentences, {args.vocoder}\n")
    print("| row | PESQ-WB mean | range |")
    print("|---|---:|---:|")
    for k, v in table.items():
        print(f"| {k} | {np.mean(v):.2f} | {min(v):.2f}-{max(v):.2f} |")


if __name__ == "__main__":
    main()
