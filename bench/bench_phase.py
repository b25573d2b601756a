"""Where the harmonic vocoder's PESQ-WB goes: its copy-synthesis taken apart.

    .venv/bin/python bench/bench_phase.py [--sentences 8] [--vocoder harmonic|CHECKPOINT]

On the bench_voice sentences rendered by Festival (in no corpus), as bench_vocoder copies
them (log-mel + ``dsp.yin`` f0), PESQ-WB against the original of:

- the copy as it is, and RTISI-LA's copy of the same mel (the phase-blind reference);
- the copy's STFT magnitude under the original's phase, and the original's magnitude under
  the copy's phase (each half alone; an inconsistent STFT, so an estimate);
- the copy copied again by the same vocoder (its own audio, whose f0 is known exactly):
  with the f0 it was made with, that f0 5 cents sharp, and ``dsp.yin``'s f0 of it. Both
  renders start their oscillator at the same phase, so the exact f0 also gives the same
  harmonic phases.

A synthetic phase is what PESQ punishes; these rows say how much of it is the harmonics'
frequency track (the f0 to a few cents) and how much the rest.
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
from model import registry
from trainer.vocoder import quality


def _stft(y: np.ndarray, conv) -> np.ndarray:
    return librosa.stft(y, n_fft=conv.n_fft, hop_length=conv.hop_length)


def _istft(spec: np.ndarray, conv, n: int) -> np.ndarray:
    return librosa.istft(spec, hop_length=conv.hop_length, length=n)


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
