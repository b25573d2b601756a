"""The voice: intelligibility beside Festival (the teacher), and speed.

    .venv/bin/python bench/bench_voice.py [--voice CHECKPOINT] [--vocoder NAME ...]

Word error rate of pocketsphinx (its bundled en-us model) on `melgand say` output and on
Festival's own rendering of the same held-out sentences (written here, not in any training
corpus, never tuned on); then the generator's streaming cost per frame, text-to-mel speed
and peak memory. Run it on an idle machine.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voice", type=Path, default=None)
    ap.add_argument("--vocoder", action="append", default=[],
                    help="neural, rtisi, griffin_lim or a checkpoint; repeat to compare "
                    "(default: rtisi)")  # fmt: skip
    ap.add_argument("--save", type=Path, default=None, help="keep the rendered wavs here")
    ap.add_argument("--generated", type=int, default=0, metavar="N",
                    help="instead of the 20 written sentences: N from the corpus generator "
                    "with seed 101 (the packaged voice's corpus is seed 1)")  # fmt: skip
    ap.add_argument("--draws", type=int, default=1, metavar="K",
                    help="render each sentence K times, draw d>0 from the mel plus 1e-6 noise "
                    "(seed d): RTISI-LA is chaotic, so each draw is a different phase, and "
                    "the mean over draws is the vocoder's expected WER, not one roll")  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(2)
    v = _voice.Voice.load(args.voice) if args.voice else _voice.packaged()
    names = args.vocoder or ["rtisi"]
    cfg = config.load()
    vocoders = {n: _vocoder(cfg, n) for n in names}
    totals = {n: np.zeros((args.draws, 2), int) for n in names}
    totals["festival"] = np.zeros((1, 2), int)  # deterministic: one draw
    sentences = SENTENCES
    if args.generated:
        from trainer.sentences import generate

        sentences = generate(args.generated, 101).sentences
    for k, s in enumerate(sentences):
        ref = words(s)
        totals["festival"][0] += wer(ref, recognize(*festival(s)))
        mel = v.mel(s)
        for d in range(args.draws):
            m = mel + 1e-6 * np.random.default_rng(d).standard_normal(mel.shape) if d else mel
            for n, voc in vocoders.items():
                y = voc(m.astype(np.float32))
                if args.save:
                    args.save.mkdir(parents=True, exist_ok=True)
                    sf.write(args.save / f"{k:02d}_{Path(n).stem}_{d}.wav", y, v.conv.sample_rate)
                totals[n][d] += wer(ref, recognize(y, v.conv.sample_rate))
    w = {k: 100.0 * t[:, 0] / t[:, 1] for k, t in totals.items()}
    kind = "generated (seed 101)" if args.generated else "written"
    print(f"# voice: {len(sentences)} held-out {kind} sentences, pocketsphinx en-us, "
          f"{args.draws} draw(s) per vocoder\n")  # fmt: skip
    print("| renderer | WER % (mean of draws) | draws |")
    print("|---|---:|---|")
    print(f"| Festival cmu_us_slt_arctic_hts (teacher) | {w['festival'][0]:.1f} | |")
    for n in names:
        each = " ".join(f"{x:.1f}" for x in w[n])
        print(f"| melgand default voice + {n} vocoder | {w[n].mean():.1f} "
              f"({w[n].mean() - w['festival'][0]:+.1f} vs teacher) | {each} |")  # fmt: skip

    # speed: text -> mel offline, and the generator streaming frame by frame
    text = " ".join(SENTENCES[:5])
    v.mel(text)
    t = time.perf_counter()
    mel = v.mel(text)
    t_mel = time.perf_counter() - t
    audio_s = mel.shape[1] * v.conv.hop_length / v.conv.sample_rate
    with torch.no_grad():
        x = v.frame_inputs(text)
        gen, st = v.model.generator, None
        for i in range(20):
            _, st = gen.stream(x[:, i : i + 1], st)
        t = time.perf_counter()
        n = min(x.shape[1], 600)
        for i in range(20, n):
            _, st = gen.stream(x[:, i : i + 1], st)
        per_frame = (time.perf_counter() - t) / (n - 20)
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
    print(f"| peak memory (RSS) of this process | {peak:.0f} MB |")


if __name__ == "__main__":
    main()
