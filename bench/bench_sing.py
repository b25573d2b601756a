"""Singing: in tune, on time and intelligible, beside a WORLD speech-to-singing baseline.

    .venv/bin/python bench/bench_sing.py [--vocoder NAME|CHECKPOINT] [--voice CHECKPOINT]
        [--paths ours,baseline,live,copy] [--songs NAME,...] [--held-out] [--keys 0,7]
        [--no-melodies] [--out DIR]

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
   path, (b) by the baseline: Festival (the teacher) speaks the lyric and
   trainer.sung.retime re-times its phones onto the notes with WORLD, and (c) live: played
   into `melgand serve --sink wav:PATH` as timetagged OSC bundles (`/lyric` + `/mnote`,
   same voice and vocoder; see :class:`Live`). For each: Whisper
   base word errors against the lyric (transcripts printed), pitch error, unvoiced notes,
   vibrato read back on notes of 0.6 s or more (rate in Hz, depth in cents: half peak to
   peak), DNSMOS OVRL/SIG. Spectrograms (a panel a path) go to --out.
   (d) copy (asked for by name): the baseline's audio analysed (log-mel, YIN f0) and
   resynthesized by our vocoder, no generator: which half loses words where ours does.
   --held-out sings four more songs, written after the three were tuned on (the check that
   what was tuned on them holds on songs nobody tuned on).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon import protocol as P
from daemon import score as daemon_score
from model.voice import SINGING, singing_path
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
# written later, to check on songs nobody tuned on what was tuned on the three above
# (--held-out sings these instead; same rules: real words, in no corpus)
HELD_OUT = {
    "summer rain": [
        (60, 0.3, "the"), (64, 0.45, "sum-"), (62, 0.3, "mer"), (65, 0.6, "rain"),
        (64, 0.3, "is"), (67, 0.45, "fall-"), (65, 0.3, "ing"), (64, 1.0, "down"), REST,
        (62, 0.3, "it"), (65, 0.45, "fills"), (64, 0.3, "the"), (69, 0.6, "streets"),
        (67, 0.3, "of"), (65, 0.45, "this"), (64, 0.3, "old"), (60, 1.2, "town"),
    ],
    "golden field": [
        (57, 0.3, "we"), (60, 0.45, "ran"), (59, 0.3, "a-"), (60, 0.6, "cross"),
        (62, 0.3, "the"), (64, 0.45, "gol-"), (62, 0.3, "den"), (57, 1.0, "field"), REST,
        (60, 0.3, "and"), (62, 0.45, "watched"), (64, 0.3, "the"), (65, 0.45, "eve-"),
        (64, 0.3, "ning"), (62, 0.6, "sun"), (60, 0.3, "go"), (62, 1.2, "by"),
    ],
    "city lights": [
        (62, 0.3, "the"), (64, 0.45, "cit-"), (65, 0.3, "y"), (67, 0.6, "lights"),
        (65, 0.3, "are"), (64, 0.45, "shin-"), (62, 0.3, "ing"), (64, 1.0, "bright"), REST,
        (60, 0.3, "my"), (62, 0.45, "friend"), (64, 0.3, "is"), (65, 0.45, "wait-"),
        (67, 0.3, "ing"), (69, 0.6, "by"), (67, 0.3, "the"), (65, 1.2, "door"),
    ],
    "winter song": [
        (59, 0.3, "give"), (60, 0.3, "me"), (62, 0.3, "a"), (64, 0.6, "song"),
        (62, 0.3, "to"), (60, 0.45, "keep"), (62, 0.3, "me"), (64, 1.0, "warm"), REST,
        (65, 0.3, "and"), (64, 0.45, "hold"), (62, 0.3, "my"), (60, 0.6, "hand"),
        (62, 0.3, "un-"), (64, 0.45, "til"), (62, 0.3, "the"), (60, 1.2, "dawn"),
    ],
}  # fmt: skip
SONG_TEXT |= {
    "summer rain": "The summer rain is falling down, it fills the streets of this old town.",
    "golden field": "We ran across the golden field and watched the evening sun go by.",
    "city lights": "The city lights are shining bright, my friend is waiting by the door.",
    "winter song": "Give me a song to keep me warm, and hold my hand until the dawn.",
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

    from daemon.cli import _vocoder
    from daemon.synth import Renderer
    from model import voice as _voice

    torch.set_num_threads(1)
    cfg = _config()
    v, _ = _voice.resolve(voice, cfg.audio, cfg.daemon.singing_model)
    r = Renderer.configured(v, _vocoder(cfg, vocoder), cfg.daemon)
    assert r.rate == SR, r.rate
    return r


def copied(r, y: np.ndarray) -> np.ndarray:
    """The baseline's audio through our vocoder alone (its log-mel and YIN f0, as `melgand
    vocode` analyses them), no generator."""
    from bench_voice import copy

    return copy(r.vocoder, y, SR, r.voice.conv)


PATHS = ("ours", "baseline", "live", "copy")  # --paths
SETS: list[str] = []  # --set KEY=VALUE: config overrides for every path here and the daemon


def _config():
    from daemon import config

    return config.load(None, [config.parse_override(kv) for kv in SETS])


def ours(r, sing: P.Sing) -> np.ndarray:
    """`melgand sing`'s path, on the score's own timeline (the config's voices and
    ``[singing]`` settings, as `melgand sing` takes them)."""
    from daemon.scheduler import render_score

    cfg = _config()
    return render_score(r, sing, cfg.daemon.max_voices, 0.0, cfg.singing.params())


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


class Live:
    """The songs played live: `melgand serve --sink wav:PATH --osc ...` in a subprocess, each
    note an OSC bundle timetagged at its beat (the daemon starts its onset consonants before
    the timetag, as the score path does), ``/lyric SYL ID`` + ``/mnote PITCH 100 ID`` (a
    melisma's syllable ``_``), its release a bundle ``/mnote/rel PITCH ID`` timetagged at the
    note's end, as a DAW sends them, each ``AHEAD`` seconds before its time: the daemon sings
    a run of touching timed notes as a phrase (:mod:`daemon.runs`). A marker note ("la", MIDI
    67, 0.3 s, its vowel on its timetag) sounds 2 s before the first song: found in the wav
    by correlation with the same note rendered here (to the sample), it puts the wav on the
    songs' timelines."""

    AHEAD = 0.8  # s a bundle is sent before its timetag (time to prepare the voice)
    GAP = 3.0  # s of silence between performances

    def __init__(self, r, voice: Path | None, vocoder: str, log: Path, line: bool = False):
        self.r, self.voice, self.vocoder, self.log = r, voice, vocoder, log
        self.line = line  # a song's syllables sent once as /lyrics, not a /lyric a note
        self.events: list[tuple[float, list]] = []  # (wall timetag, [(address, args)])
        self.starts: dict = {}  # key -> (wall time of score time 0, seconds)
        self.nid = 0

    def _id(self) -> int:
        self.nid += 1
        return self.nid

    def plan(self, key, sing: P.Sing, t0: float) -> float:
        """Bundles for ``sing`` with score time 0 at wall time ``t0``; its end (wall)."""
        notes = sing.notes
        beats = [t0 + n["start"] for n in notes]
        ends = [b + n["dur"] for b, n in zip(beats, notes, strict=True)]
        words = [n["lyric"].strip() for n in notes if n["lyric"].strip() not in MELISMA]
        for i, n in enumerate(notes):
            p, nid, lyric = float(n["pitch"]), self._id(), n["lyric"].strip()
            on = [("/lyric", [lyric, nid]), ("/mnote", [p, 100.0, nid])]
            if self.line and lyric not in MELISMA:  # the syllable from the line
                on = on[1:] if i else [("/lyrics", [" ".join(words)]), *on[1:]]
            self.events.append((beats[i], on))  # the daemon starts the consonants early
            self.events.append((ends[i], [("/mnote/rel", [p, nid])]))  # at the note's end
        end = max(ends) + 0.6
        self.starts[key] = (t0, end - t0)
        return end

    def perform(self, keys_sings: list) -> dict:
        """Plays every ``(key, sing)`` through one daemon; their clips by key."""
        import soundfile as sf
        from pythonosc.osc_bundle_builder import OscBundleBuilder
        from pythonosc.osc_message import OscMessage
        from pythonosc.osc_message_builder import OscMessageBuilder

        from daemon.runs import LivePhrase

        def dgram(address, args):
            b = OscMessageBuilder(address)
            for a in args:
                b.add_arg(a)
            return b.build()

        tmp = Path(tempfile.mkdtemp(prefix="bench_sing_live_"))
        wav = tmp / "timeline.wav"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        sets = ["daemon.greeting=''", f"daemon.vocoder={json.dumps(self.vocoder)}",
                "daemon.device='cpu'", *SETS]  # fmt: skip
        if self.voice is not None:  # the daemon takes voices by name, from voices_dir
            (tmp / "voices").mkdir()
            (tmp / "voices" / "bench.safetensors").symlink_to(self.voice.resolve())
            sings = singing_path(self.voice)  # the same singing model as the score path's
            if sings.is_file():
                (tmp / "voices" / f"bench.{SINGING}").symlink_to(sings.resolve())
            sets += [f"daemon.voices_dir={json.dumps(str(tmp / 'voices'))}", "daemon.voice='bench'"]
        cmd = [sys.executable, "-m", "daemon.cli", "serve", "--sink", f"wav:{wav}",
               "--osc", f"127.0.0.1:{port}", "--mqtt", "off"]  # fmt: skip
        for s in sets:
            cmd += ["--set", s]
        root = Path(__file__).resolve().parent.parent
        with self.log.open("w") as f:
            p = subprocess.Popen(cmd, stderr=f, cwd=root)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dest = ("127.0.0.1", port)
        status, fails = None, []
        try:
            deadline = time.monotonic() + 180
            while True:  # until it answers /status
                sock.sendto(dgram("/status", []).dgram, dest)
                sock.settimeout(0.5)
                try:
                    if OscMessage(sock.recvfrom(4096)[0]).address == "/status.reply":
                        break
                except (TimeoutError, ConnectionRefusedError):
                    pass
                if p.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the daemon did not start:\n{self.log.read_text()}")
            mark = time.time() + 1.5
            self.events = [(mark, [("/lyric", ["la", 0]), ("/mnote", [67.0, 100.0, 0])]),
                           (mark + 0.3, [("/mnote/rel", [67.0, 0])])]  # fmt: skip
            t = mark + 2.0
            for key, sing in keys_sings:
                t = self.plan(key, sing, t) + self.GAP
            self.events.sort(key=lambda e: e[0])
            for at, msgs in self.events:
                time.sleep(max(0.0, at - self.AHEAD - time.time()))
                bb = OscBundleBuilder(at)
                for a, args in msgs:
                    bb.add_content(dgram(a, args))
                sock.sendto(bb.build().dgram, dest)
            time.sleep(max(0.0, t - self.GAP + 0.5 - time.time()))
            sock.sendto(dgram("/status", []).dgram, dest)
            deadline = time.monotonic() + 5
            while status is None and time.monotonic() < deadline:  # past /done, /fail
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                m = OscMessage(sock.recvfrom(65536)[0])
                if m.address == "/fail":
                    fails.append(m.params)
                elif m.address == "/status.reply":
                    status = m.params
        finally:
            sock.close()
            p.send_signal(signal.SIGINT)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        y, sr = sf.read(wav, dtype="float32")
        assert sr == SR, sr
        # the marker: the first sound, refined by correlation with the same note made here
        la = {
            "id": 0,
            "pitch": 67.0,
            "velocity": 100.0,
            "start": 0.0,
            "dur": 0.3,
            "phones": daemon_score.phones([{"lyric": "la"}])[0],
            "melisma": False,
        }
        from daemon import expression

        params = {"seed": 0, **expression.DEFAULTS, **_config().singing.params()}  # the daemon's
        marker = LivePhrase(self.r, [la], params)
        lead = marker.lead  # its consonant sounds before the timetag, its vowel on it
        ref = marker.render(4096)
        first = int(np.argmax(np.abs(y) > 1e-4))
        best, where = -1.0, first
        for s in range(max(0, first - 1500), first + 500):
            seg = y[s : s + len(ref)]
            c = float(np.dot(seg, ref)) / (np.linalg.norm(seg) * np.linalg.norm(ref) + 1e-9)
            if c > best:
                best, where = c, s
        err = self.log.read_text()
        late = re.findall(r"late by ([0-9.]+) ms", err)
        self.report = (
            f"live OSC: `melgand serve` (voice {self.voice or 'default (packaged)'}, vocoder "
            f"{self.vocoder}, CPU), {len(self.events)} bundles; the wav put on the songs' "
            f"timelines by the marker note (correlation {best:.3f} with it rendered here); "
            f"late events: {len(late)}"
            + (f" (at most {max(map(float, late)):.0f} ms)" if late else "")
            + (f"; underruns {status[3]}, peak load {status[5]:.0f} %" if status else "")
            + (f"; /fail: {fails}" if fails else "")
        )
        clips = {}
        for key, (t0, dur) in self.starts.items():
            s0 = where + lead + round((t0 - mark) * SR)
            clips[key] = y[s0 : s0 + round(dur * SR)]
        return clips


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
    print(f"\nnative range (the model itself): MIDI {r.singing.native_range}; beyond it, mel "
          "warping\n")  # fmt: skip


def songs(r, out: Path, transpositions=(0, 7), chosen=("ours", "baseline", "live"),
          names=None, live: Live | None = None) -> None:  # fmt: skip
    from bench import judges

    out.mkdir(parents=True, exist_ok=True)
    names = list(names or SONGS)
    book = SONGS | HELD_OUT
    paths = {"ours": lambda text, s: ours(r, s)} if r is not None and "ours" in chosen else {}
    cache: dict = {}
    made: dict = {}

    def world(text, s):  # the baseline's clip, rendered once a song and key for both paths
        if now not in made:
            made[now] = baseline(text, s, cache)
        return made[now]

    if "baseline" in chosen:
        paths["WORLD baseline"] = world
    if "copy" in chosen and r is not None:
        paths["baseline, our vocoder"] = lambda text, s: copied(r, world(text, s))
    if live is not None:  # played first, all in one daemon: (name, key) -> clip
        played = live.perform([((n, tr), score(book[n], tr)) for n in names
                               for tr in transpositions])  # fmt: skip
        print(live.report + "\n")
        paths["live OSC"] = lambda text, s: played[now]
    rows, totals, transcripts, now = [], {}, [], None
    for name in names:
        notes, text = book[name], SONG_TEXT[name]
        for tr in transpositions:
            sing = score(notes, tr)
            now = (name, tr)  # the live path's clip
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
    print(f"\nspectrograms ({', '.join(paths)}, top to bottom): {out}/*.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocoder", default=None)
    ap.add_argument("--voice", type=Path, default=None, help="an acoustic checkpoint")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_sing"))
    ap.add_argument(
        "--paths",
        default="ours,baseline,live",
        help="comma-separated: ours, baseline, live, copy (default: the first three)",
    )
    ap.add_argument("--songs", default=None, help="comma-separated song names (default: all)")
    ap.add_argument(
        "--held-out",
        action="store_true",
        help="sing the held-out songs (written after the others were tuned on)",
    )
    ap.add_argument("--keys", default="0,7", help="transpositions, comma-separated")
    ap.add_argument("--no-melodies", action="store_true", help="skip part 1")
    ap.add_argument("--baseline-only", action="store_true", help="= --paths baseline")
    ap.add_argument("--live-lyrics", choices=["note", "line"], default="note",
                    help="live: a /lyric with each note, or each song's syllables sent once as "
                    "/lyrics (each note then knows the syllable after it)")  # fmt: skip
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override, e.g. singing.consonant=0.5 (every path)")  # fmt: skip
    args = ap.parse_args()
    SETS.extend(args.set)
    chosen = {p.strip() for p in ("baseline" if args.baseline_only else args.paths).split(",")}
    if chosen - set(PATHS):
        ap.error(f"--paths: unknown {sorted(chosen - set(PATHS))}; known: {', '.join(PATHS)}")
    book = HELD_OUT if args.held_out else SONGS
    names = [n.strip() for n in args.songs.split(",")] if args.songs else list(book)
    if set(names) - set(SONGS | HELD_OUT):
        known = list(SONGS | HELD_OUT)
        ap.error(f"--songs: unknown {sorted(set(names) - set(known))}; known: {known}")
    r = None
    if chosen & {"ours", "live", "copy"}:  # live needs the voice here too: leads, the marker
        try:
            r = renderer(args.vocoder, args.voice)
        except Exception as e:
            print(f"our path is unavailable: {type(e).__name__}: {e}\n")
    live = None
    if r is not None and "live" in chosen:
        name = _config().vocoder_name(args.vocoder)  # the vocoder `melgand sing` takes
        live = Live(r, args.voice, name, args.out / "live_daemon.log", args.live_lyrics == "line")
        args.out.mkdir(parents=True, exist_ok=True)
    if r is not None and "ours" in chosen and not args.no_melodies:
        melodies(r)
    keys = tuple(float(k) if "." in k else int(k) for k in args.keys.split(","))
    songs(r, args.out, keys, chosen, names, live)


if __name__ == "__main__":
    main()
