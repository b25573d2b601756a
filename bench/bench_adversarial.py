"""Does the mel discriminator help? Voices trained with and without it, side by side.

    .venv/bin/python bench/bench_adversarial.py --data CORPUS --voice NAME=CHECKPOINT ...

For each voice, on the trainer's held-out items of CORPUS (the same split it validated
on): the free-running mel L1 against the target (normalized log-mel; lower is closer) and
the spectral detail kept, as the ratio of predicted to target standard deviation along time
in each mel band, averaged over bands (over-smoothed mels score below 1); then the word error
rate of pocketsphinx on the bench_voice sentences through the DSP vocoder (RTISI-LA).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from bench_voice import SENTENCES, recognize, wer, words

import dsp
from model.voice import Voice
from trainer import acoustic


def held_out_scores(v: Voice, data: Path, held_out: float = 0.02) -> tuple[float, float]:
    items, _ = acoustic.load_items(data, v.conv, v.header.get("tokens", "segments"))
    items.sort(key=lambda i: i.id)
    val = items[-max(1, round(len(items) * held_out)) :]
    stats = v.stats
    l1, ratios = [], []
    model = v.module()  # teacher-forced: the torch module
    with torch.no_grad():
        for it in val:
            tokens, durs, mel, ctrl, *_ = acoustic.make_batch([it], stats)
            enc = model.encoder(tokens)
            frames = model.generator(model.frame_inputs(enc, durs, ctrl))
            pred = model.generator.split(frames)[0][0]
            l1.append((pred - mel[0]).abs().mean().item())
            ratios.append((pred.std(0) / mel[0].std(0).clamp(min=1e-3)).mean().item())
    return float(np.mean(l1)), float(np.mean(ratios))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the corpus the voices trained on")
    ap.add_argument("--voice", action="append", required=True, metavar="NAME=CHECKPOINT")
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"# mel discriminator: held-out items of {args.data}, {len(SENTENCES)} WER sentences\n")
    print("| voice | step | held-out mel L1 | detail (std ratio) | WER % |")
    print("|---|---:|---:|---:|---:|")
    for spec in args.voice:
        name, _, path = spec.partition("=")
        v = Voice.load(path)
        l1, ratio = held_out_scores(v, args.data)
        voc = dsp.DspVocoder(v.conv, "rtisi")
        edits = total = 0
        for s in SENTENCES:
            e, n = wer(words(s), recognize(voc(v.mel(s)), v.conv.sample_rate))
            edits, total = edits + e, total + n
        step = v.header["provenance"].get("step")
        print(f"| {name} | {step} | {l1:.4f} | {ratio:.3f} | {100 * edits / total:.1f} |")


if __name__ == "__main__":
    main()
