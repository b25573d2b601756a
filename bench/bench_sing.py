"""Singing: in tune, on time and intelligible, beside a WORLD speech-to-singing baseline.

    .venv/bin/python bench/bench_sing.py [--vocoder NAME|CHECKPOINT] [--out DIR]

All audio is measured on the file's own timeline: sample n is score time n/22050 (scores
start at 0.5 s, room for the first onset consonants).

1. Melodies (MIDI 52-72, notes 0.3-1 s, common syllables) sung by `melgand sing`'s path (the
   daemon's scheduler and voices, offline). Pitch: librosa's pyin over each note's middle
   60 %, the median against the note, in cents; a note with under half its middle voiced
   counts as unvoiced. Onset: the first moment near the note's start (-100..+150 ms) where
   the pitch (plain YIN, unsmoothed) is within a semitone of the note, against the score's
   start (the vowel is meant to land there).
2. Songs written for the bench (three, 16-17 notes of 0.3-0.6 s with longer phrase ends,
   real English words, from no corpus), in their key and 7 semitones up, sung (a) by our
   path and (b) by the baseline: Festival (the teacher) speaks the lyric and
   trainer.sung.retime re-times its phones onto the notes with WORLD. For each: Whisper
   base word errors against the lyric (transcripts printed), pitch error, unvoiced notes,
   vibrato read back on notes of 0.6 s or more (rate in Hz, depth in cents: half peak to
   peak), DNSMOS OVRL/SIG. Spectrograms (ours above the baseline) go to --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import librosa
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon import protocol as P
from trainer import sung as _sung

LEAD = 0.5  # score time of the first note
SR = 22050
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
# (pitch, seconds, syllable); "-" ends a syllable inside a word, "_" a melisma, a None
# pitch a rest
REST = (None, 0.3, "")
SONGS = {
    "morning light": [
        (60, 0.3, "the"), (62, 0.45, "mor-"), (64, 0.3, "ning"), (65, 0.6, "light"),
        (64, 0.3, "is"), (62, 0.3, "on"), (60, 0.3, "the"), (62, 1.0, "hill"), REST,
        (64, 0.3, "the"), (65, 0.45, "birds"), (67, 0.3, "are"), (69, 0.45, "sing-"),
        (67, 0.3, "ing"), (65, 0.45, "soft"), (64, 0.3, "and"), (60, 1.2, "low"),
    ],
    "riverside": [
        (57, 0.45, "I"), (60, 0.45, "walk"), (60, 0.3, "a-"), (62, 0.6, "long"),
        (64, 0.3, "the"), (65, 0.45, "riv-"), (64, 0.3, "er"), (60, 1.0, "side"), REST,
        (62, 0.3, "and"), (64, 0.45, "count"), (65, 0.3, "the"), (67, 0.6, "boats"),
        (65, 0.3, "that"), (64, 0.45, "sail"), (62, 0.3, "a-"), (60, 1.2, "way"),
    ],
    "sleep tonight": [
        (64, 0.45, "when"), (67, 0.45, "eve-"), (65, 0.3, "ning"), (64, 0.6, "comes"),
        (62, 0.3, "the"), (64, 0.45, "stars"), (65, 0.3, "will"), (67, 0.5, "shine"),
        (65, 0.5, "_"), REST,
        (64, 0.3, "so"), (62, 0.45, "close"), (60, 0.3, "your"), (62, 0.6, "eyes"),
        (64, 0.3, "and"), (62, 0.45, "sleep"), (59, 0.3, "to-"), (60, 1.2, "night"),
    ],
}  # fmt: skip
SONG_TEXT = {
    "morning light": "The morning light is on the hill, the birds are singing soft and low.",
    "riverside": "I walk along the riverside and count the boats that sail away.",
    "sleep tonight": "When evening comes the stars will shine, so close your eyes and sleep "
    "tonight.",
}
MELISMA = ("_", "+", "~")


def score(notes, transpose: float = 0.0) -> P.Sing:
    t, out = LEAD, []
    for pitch, dur, lyric in notes:
        if pitch is not None:
            out.append(
                {
                    "pitch": float(pitch) + transpose,
                    "start": round(t, 4),
                    "dur": dur,
                    "lyric": lyric,
                    "velocity": 100.0,
                }
            )
        t += dur
    return P.Sing(out)


# ----------------------------------------------------------------------------- the paths


def renderer(vocoder: str | None, voice: Path | None = None):
    import torch

    from daemon import config
    from daemon.cli import _vocoder
    from daemon.synth import Renderer
    from model import voice as _voice

    torch.set_num_threads(1)
    cfg = config.load()
    v = _voice.Voice.load(voice, cfg.audio) if voice else _voice.packaged(cfg.audio)
    r = Renderer.configured(v, _vocoder(cfg, vocoder), cfg.daemon)
    assert r.rate == SR, r.rate
    return r


def ours(r, sing: P.Sing) -> np.ndarray:
    """`melgand sing`'s path, on the score's own timeline."""
    from daemon.scheduler import render_score

    return render_score(r, sing, preroll=0.0)


def baseline(text: str, sing: P.Sing, cache: dict) -> np.ndarray:
    """Festival speaks the lyric; its phones re-timed onto the notes with WORLD."""
    if text not in cache:
        y, sr, phones = _sung.festival_phones(text)
        cache[text] = (y, sr, phones, _sung.analyze(y, sr))
    y, sr, phones, world = cache[text]
    notes, k = [], -1
    for n in sing.notes:
        k += n["lyric"].strip() not in MELISMA
        notes.append(_sung.Note(n["start"], n["dur"], n["pitch"], max(k, 0)))
    syls = _sung.syllabify(phones)
    if len(syls) != k + 1:
        raise RuntimeError(f"Festival spoke {len(syls)} syllables for {k + 1} sung: {text!r}")
    out, _, _ = _sung.retime(y, sr, phones, notes, world=world, syllables=syls)
    return out


# ----------------------------------------------------------------------------- measures


def pitch(y: np.ndarray, hop: int = 64):
    f0, voiced, _ = librosa.pyin(y, fmin=100, fmax=1000, sr=SR, frame_length=1024, hop_length=hop)
    return f0, voiced, np.arange(len(f0)) * hop / SR


def pitch_errors(sing: P.Sing, f0, voiced, times) -> tuple[list[float], int]:
    cents, unvoiced = [], 0
    for n in sing.notes:
        start, dur = n["start"], n["dur"]
        mid = (times >= start + 0.2 * dur) & (times <= start + 0.8 * dur)
        ok = mid & voiced
        if ok.sum() < 0.5 * mid.sum():
            unvoiced += 1
            continue
        target = librosa.midi_to_hz(n["pitch"])
        cents.append(abs(1200 * np.log2(np.median(f0[ok]) / target)))
    return cents, unvoiced


def vibrato(sing: P.Sing, f0, voiced, times, min_dur: float = 0.6) -> list[tuple[float, float]]:
    """(rate Hz, depth cents) of each long note: the pitch over the note's 35-90 %, a line
    taken out, the strongest 3-9 Hz component and sqrt(2) x the rms."""
    out, hop = [], times[1] - times[0]
    for n in sing.notes:
        if n["dur"] < min_dur:
            continue
        m = (times >= n["start"] + 0.35 * n["dur"]) & (times <= n["start"] + 0.9 * n["dur"])
        if (m & voiced).sum() < 0.8 * m.sum() or m.sum() < 0.25 / hop:
            continue
        t = times[m]
        c = 1200 * np.log2(np.where(voiced[m], f0[m], np.nan) / librosa.midi_to_hz(n["pitch"]))
        c = np.interp(t, t[~np.isnan(c)], c[~np.isnan(c)])
        c = c - np.polyval(np.polyfit(t, c, 1), t)
        spec = np.abs(np.fft.rfft(c * np.hanning(c.size), 1 << 14))
        freqs = np.fft.rfftfreq(1 << 14, hop)
        band = (freqs >= 3) & (freqs <= 9)
        out.append((float(freqs[band][np.argmax(spec[band])]), float(np.sqrt(2) * c.std())))
    return out


def onset_errors(sing: P.Sing, y: np.ndarray, times, hop: int = 64) -> list[float]:
    # plain YIN: pyin's smoothing caps pitch jumps at 36 octaves a second, which alone
    # would delay an octave leap by 28 ms
    f0y = librosa.yin(y, fmin=100, fmax=1000, sr=SR, frame_length=1024, hop_length=hop)
    out = []
    for n in sing.notes:
        start, target = n["start"], librosa.midi_to_hz(n["pitch"])
        near = (times >= start - 0.1) & (times <= start + 0.15)
        hit = np.flatnonzero(near & (np.abs(12 * np.log2(f0y / target)) < 1))
        if len(hit):
            out.append(abs(times[hit[0]] - start) * 1000)
    return out


def spectrograms(path: Path, title: str, clips: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(clips), 1, figsize=(12, 3.2 * len(clips)), squeeze=False)
    for ax, (name, y) in zip(axes[:, 0], clips.items(), strict=True):
        spec = np.abs(librosa.stft(y, n_fft=1024, hop_length=256))
        s = librosa.amplitude_to_db(spec, ref=np.max, top_db=None)
        ax.imshow(s, origin="lower", aspect="auto", vmin=-90, vmax=0, cmap="magma",
                  extent=(0, y.size / SR, 0, SR / 2000))  # fmt: skip
        ax.set_ylim(0, 8)
        ax.set_ylabel("kHz")
        ax.set_title(f"{title}: {name}")
    axes[-1, 0].set_xlabel("score time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ----------------------------------------------------------------------------- main


def melodies(r) -> None:
    cents, unvoiced, onsets, n_total = [], 0, [], 0
    print("| melody | notes | median pitch error (cents) | unvoiced | median onset error |")
    print("|---|---:|---:|---:|---:|")
    for name, notes in MELODIES.items():
        sing = score(notes)
        y = ours(r, sing)
        f0, voiced, times = pitch(y)
        mc, mu = pitch_errors(sing, f0, voiced, times)
        mo = onset_errors(sing, y, times)
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
    print(f"\nnative range (the model itself): MIDI {r.native_range}; beyond it, mel warping\n")


def songs(r, out: Path, transpositions=(0, 7)) -> None:
    from bench import judges

    out.mkdir(parents=True, exist_ok=True)
    paths = {"ours": lambda text, s: ours(r, s)} if r is not None else {}
    cache: dict = {}
    paths["WORLD baseline"] = lambda text, s: baseline(text, s, cache)
    rows, totals, transcripts = [], {}, []
    for name, notes in SONGS.items():
        text = SONG_TEXT[name]
        for tr in transpositions:
            sing = score(notes, tr)
            clips = {}
            for path, sing_fn in paths.items():
                try:
                    y = np.asarray(sing_fn(text, sing), np.float32)
                except Exception as e:
                    print(f"{path}, {name} +{tr}: failed: {type(e).__name__}: {e}")
                    continue
                clips[path] = y
                hyp = judges.whisper(y, SR)
                errs, words = judges.wer(text, hyp)
                f0, voiced, times = pitch(y)
                cents, unv = pitch_errors(sing, f0, voiced, times)
                vib = vibrato(sing, f0, voiced, times)
                mos = judges.dnsmos(y, SR)
                t = totals.setdefault((path, tr), [0, 0, [], 0, 0, [], [], []])
                t[0] += errs
                t[1] += words
                t[2] += cents
                t[3] += unv
                t[4] += len(sing.notes)
                t[5] += vib
                t[6].append(mos["ovrl"])
                t[7].append(mos["sig"])
                rate = f"{np.median([v[0] for v in vib]):.1f}" if vib else "-"
                if vib and np.median([v[1] for v in vib]) < 10:
                    rate = f"({rate}: flat)"  # under 10 cents the peak is noise
                depth = f"{np.median([v[1] for v in vib]):.0f}" if vib else "-"
                rows.append(
                    f"| {name} | +{tr} | {path} | {errs}/{words} | "
                    f"{np.median(cents) if cents else float('nan'):.0f} | {unv}/{len(sing.notes)} "
                    f"| {rate} | {depth} ({len(vib)}) | {mos['ovrl']:.2f} | {mos['sig']:.2f} |"
                )
                transcripts.append(f"- {name} +{tr}, {path}: {hyp!r}")
            if tr == 0 and clips:
                spectrograms(out / f"{name.replace(' ', '_')}.png", name, clips)
    print("| song | key | path | Whisper WER | pitch error (cents, median) | unvoiced "
          "| vibrato rate (Hz) | vibrato depth (cents, notes) | DNSMOS OVRL | SIG |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print("\n| path | key | WER | pitch error (cents) | unvoiced | vibrato | OVRL | SIG |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for (path, tr), t in totals.items():
        vib = t[5]
        v = (
            f"{np.median([a for a, _ in vib]):.1f} Hz, {np.median([b for _, b in vib]):.0f} c"
            if vib
            else "-"
        )
        if vib and np.median([b for _, b in vib]) < 10:
            v = f"flat ({np.median([b for _, b in vib]):.0f} c)"
        print(
            f"| {path} | +{tr} | {100 * t[0] / max(t[1], 1):.0f} % ({t[0]}/{t[1]}) | "
            f"{np.median(t[2]) if t[2] else float('nan'):.0f} | {100 * t[3] / t[4]:.0f} % | "
            f"{v} | {np.mean(t[6]):.2f} | {np.mean(t[7]):.2f} |"
        )
    print("\nWhisper heard:")
    print("\n".join(transcripts))
    print(f"\nspectrograms (ours above the baseline): {out}/*.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocoder", default=None)
    ap.add_argument("--voice", type=Path, default=None, help="an acoustic checkpoint")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_sing"))
    ap.add_argument("--baseline-only", action="store_true", help="skip our path")
    args = ap.parse_args()
    r = None
    if not args.baseline_only:
        try:
            r = renderer(args.vocoder, args.voice)
        except Exception as e:
            print(f"our path is unavailable: {type(e).__name__}: {e}\n")
    if r is not None:
        melodies(r)
    songs(r, args.out)


if __name__ == "__main__":
    main()
