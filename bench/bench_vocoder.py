"""Vocoders side by side: copy-synthesis quality on held-out teacher audio, and speed.

    .venv/bin/python bench/bench_vocoder.py [--vocoder NAME=CHECKPOINT ...] [--sentences N]

Quality: the bench_voice sentences (in no training corpus) rendered by Festival, resampled to
the convention's rate, analysed to log-mel and resynthesized; PESQ-WB and STOI against the
original, for Griffin-Lim (32 iterations), RTISI-LA (the streaming DSP vocoder) and every
trained checkpoint given. Speed (random weights suffice: the cost does not depend on them):
offline real-time factor on 10 s of mel and streaming cost per chunk at the daemon's chunk
size, for the paper's MelGAN, the multi-band MelGAN, the configured magnitude vocoder and the
DSP vocoder, in one run.
Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import soxr
import torch
from bench_voice import SENTENCES, festival

import dsp
from daemon import config
from model.magnitude import MagnitudeNet, MagnitudeVocoder
from model.vocoder import MelGAN, NeuralVocoder
from trainer.vocoder import quality


def best_of(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocoder", action="append", default=[], metavar="NAME=CHECKPOINT")
    ap.add_argument("--sentences", type=int, default=len(SENTENCES))
    ap.add_argument("--chunk", type=int, default=2, help="frames a streaming chunk")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--rtisi", nargs="+", default=[], metavar="LOOKAHEAD/ITERS",
                    help="RTISI-LA settings to try magnitude vocoders with (default: each "
                    "checkpoint's own; the speed rows: [vocoder] config)")  # fmt: skip
    args = ap.parse_args()
    settings = [tuple(int(x) for x in r.split("/")) for r in args.rtisi]
    torch.set_num_threads(2)
    cfg = config.load()
    conv = cfg.audio
    vocoders = {
        "Griffin-Lim 32": dsp.DspVocoder(conv, "griffin_lim", griffin_lim_iters=32),
        "RTISI-LA (DSP, streaming)": dsp.DspVocoder(conv, "rtisi"),
    }
    for spec in args.vocoder:
        name, _, path = spec.partition("=")
        voc = NeuralVocoder.load(path, conv)
        if isinstance(voc, MagnitudeVocoder) and settings:
            for la, it in settings:
                vocoders[f"{name} (RTISI-LA {la}/{it}, mel refine {voc.mel_refine})"] = (
                    MagnitudeVocoder(voc.net, conv, voc.header, la, it, voc.mel_refine)
                )
        else:
            vocoders[name] = voc

    if not args.skip_quality:
        clips = []
        for s in SENTENCES[: args.sentences]:
            y, sr = festival(s)
            y = soxr.resample(y, sr, conv.sample_rate).astype(np.float32)
            clips.append(y[: len(y) // conv.hop_length * conv.hop_length])
        print(
            f"# copy-synthesis: {len(clips)} held-out Festival sentences, {conv.sample_rate} Hz\n"
        )
        print("| vocoder | PESQ-WB | STOI |")
        print("|---|---:|---:|")
        for name, voc in vocoders.items():
            scores = [quality(y, voc(dsp.log_mel(y, conv)), conv.sample_rate) for y in clips]
            p = np.mean([s["pesq_wb"] for s in scores])
            st = np.mean([s["stoi"] for s in scores])
            print(f"| {name} | {p:.2f} | {st:.3f} |")

    v = cfg.vocoder
    settings = settings or [(v.rtisi_lookahead, v.rtisi_iters)]
    mb = MelGAN(conv.n_mels, conv.hop_length, 256, (4, 4, 4), bands=4, lookahead=1)
    paper = MelGAN(conv.n_mels, conv.hop_length, 512, (8, 8, 2, 2))
    mag = MagnitudeNet(conv.n_mels, conv.n_bins, v.channels, v.blocks, v.lookahead)
    mag.remove_weight_norm()
    timed = {
        "MelGAN, paper config": NeuralVocoder(paper.remove_weight_norm(), conv, {}),
        "multi-band MelGAN (4 bands, 256 ch)": NeuralVocoder(mb.remove_weight_norm(), conv, {}),
    }
    for la, it in settings:
        name = (f"magnitude net ({v.channels} ch x {v.blocks}) + mel refine {v.mel_refine} "
                f"+ RTISI-LA {la}/{it}")  # fmt: skip
        timed[name] = MagnitudeVocoder(mag, conv, {}, la, it, v.mel_refine)
    timed["RTISI-LA (DSP: NNLS + RTISI-LA 2/4)"] = dsp.DspVocoder(conv, "rtisi")
    seconds = 10.0
    frames = int(seconds * conv.sample_rate / conv.hop_length)
    mel = np.random.default_rng(0).normal(-5, 2, (conv.n_mels, frames)).astype(np.float32)
    print(f"\n# speed: {seconds:.0f} s of audio, {torch.get_num_threads()} threads\n")
    print("| vocoder | parameters | offline x real time | stream ms per chunk | chunk audio ms |")
    print("|---|---:|---:|---:|---:|")
    chunk_ms = args.chunk * conv.hop_length / conv.sample_rate * 1000
    for name, voc in timed.items():
        net = getattr(voc, "net", None)  # the DSP vocoder has none
        n = f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f}M" if net is not None else "0"
        t = best_of(lambda voc=voc: voc(mel), 3)
        st = None
        for i in range(0, 40, args.chunk):  # warm
            _, st = voc.stream(mel[:, i : i + args.chunk], st)
        t0 = time.perf_counter()
        k = 0
        for i in range(40, 400, args.chunk):
            _, st = voc.stream(mel[:, i : i + args.chunk], st)
            k += 1
        per = (time.perf_counter() - t0) / k * 1000
        print(f"| {name} | {n} | {seconds / t:.1f} | {per:.2f} | {chunk_ms:.1f} |")


if __name__ == "__main__":
    main()
