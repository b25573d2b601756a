"""Singing: in tune and on time, on melodies written for the bench.

    .venv/bin/python bench/bench_sing.py [--vocoder NAME|CHECKPOINT]

Each melody (MIDI 52-72, notes 0.3-1 s, common syllables) is sung by `melgand sing`'s path
(the daemon's scheduler and voices, offline). Pitch: librosa's pyin over each note's middle
60 %, the median against the note, in cents; a note with under half its middle voiced counts
as unvoiced. Onset: the first moment near the note's start (-100..+150 ms) where the pitch
(plain YIN, unsmoothed) is within a semitone of the note, against the score's start (the
vowel is meant to land there).
"""

from __future__ import annotations

import argparse

import librosa
import numpy as np
import torch

from daemon import config
from daemon import protocol as P
from daemon.cli import _vocoder
from daemon.score import render
from daemon.synth import Renderer
from model import voice as _voice

PREROLL = 0.5
MELODIES = {
    "scale up and down": [
        (52, 0.4, "do"),
        (54, 0.4, "re"),
        (56, 0.4, "mi"),
        (57, 0.4, "fa"),
        (59, 0.4, "so"),
        (61, 0.4, "la"),
        (63, 0.4, "ti"),
        (64, 0.8, "do"),
        (62, 0.3, "ti"),
        (60, 0.3, "la"),
        (57, 0.6, "so"),
    ],
    "a folk tune": [
        (60, 0.5, "the"),
        (62, 0.5, "sun"),
        (64, 1.0, "is"),
        (67, 0.5, "high"),
        (65, 0.5, "and"),
        (64, 0.5, "the"),
        (62, 0.5, "day"),
        (60, 1.0, "is"),
        (55, 0.6, "long"),
    ],
    "leaps": [
        (55, 0.6, "one"),
        (67, 0.6, "two"),
        (59, 0.4, "three"),
        (72, 0.8, "four"),
        (64, 0.5, "five"),
        (52, 0.7, "six"),
        (69, 0.5, "se-"),
        (66, 0.5, "ven"),
        (71, 1.0, "home"),
    ],
}


def score(notes) -> P.Sing:
    t, out = 0.0, []
    for pitch, dur, lyric in notes:
        out.append(
            {"pitch": float(pitch), "start": t, "dur": dur, "lyric": lyric, "velocity": 100.0}
        )
        t += dur
    return P.Sing(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocoder", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = config.load()
    r = Renderer.configured(_voice.packaged(cfg.audio), _vocoder(cfg, args.vocoder), cfg.daemon)
    sr, hop = r.rate, 64
    cents, unvoiced, onsets, n_total = [], 0, [], 0
    print("| melody | notes | median pitch error (cents) | unvoiced | median onset error |")
    print("|---|---:|---:|---:|---:|")
    for name, notes in MELODIES.items():
        sing = score(notes)
        y = render(r, sing, preroll=PREROLL)
        f0, voiced, _ = librosa.pyin(
            y, fmin=100, fmax=700, sr=sr, frame_length=1024, hop_length=hop
        )
        # onsets from plain YIN: pyin's smoothing caps pitch jumps at 36 octaves a second,
        # which alone would delay an octave leap by 28 ms
        f0y = librosa.yin(y, fmin=100, fmax=700, sr=sr, frame_length=1024, hop_length=hop)
        times = np.arange(len(f0)) * hop / sr
        mc, mo, mu = [], [], 0
        for n in sing.notes:
            start, dur = PREROLL + n["start"], n["dur"]
            mid = (times >= start + 0.2 * dur) & (times <= start + 0.8 * dur)
            ok = mid & voiced
            if ok.sum() < 0.5 * mid.sum():
                mu += 1
                continue
            target = librosa.midi_to_hz(n["pitch"])
            mc.append(abs(1200 * np.log2(np.median(f0[ok]) / target)))
            near = (times >= start - 0.1) & (times <= start + 0.15)
            hit = np.flatnonzero(near & (np.abs(12 * np.log2(f0y / target)) < 1))
            if len(hit):
                mo.append(abs(times[hit[0]] - start) * 1000)
        cents += mc
        onsets += mo
        unvoiced += mu
        n_total += len(sing.notes)
        print(
            f"| {name} | {len(sing.notes)} | {np.median(mc):.0f} | {mu} | "
            f"{np.median(mo):.0f} ms ({len(mo)} found) |"
        )
    print(
        f"| all | {n_total} | {np.median(cents):.0f} | {100 * unvoiced / n_total:.0f} % | "
        f"{np.median(onsets):.0f} ms |"
    )
    print(f"\nnative range (the model itself): MIDI {r.native_range}; beyond it, mel warping")


if __name__ == "__main__":
    main()
