"""The data pipeline at corpus scale: Festival corpus, feature cache, aligner.

    .venv/bin/python bench/bench_data.py [--sentences 1000] [--steps 2000] [--out DIR]

Builds a teacher corpus of N sentences (seed 1), prepares its features, trains the aligner
twice (tokens from Festival's phone names, and from our text frontend) and prints wall
times, coverage and the phone-boundary error against Festival's own segment times on the
held-out 5 %. Run it on an idle machine: the times are the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

import dsp
from trainer import align, corpus, features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="melgand-bench-")) / "corpus"
    t = time.perf_counter()
    m = corpus.build(out, args.sentences, 1, progress=False)
    t_corpus = time.perf_counter() - t
    t = time.perf_counter()
    p = features.prepare(out, dsp.DEFAULT, progress=False)
    t_feat = time.perf_counter() - t
    audio_min = sum(features.load(p.cache, r.id)["mel"].shape[1] for r in p.report.good)
    audio_min *= 256 / 22050 / 60
    runs = {}
    for tokens in ("segments", "frontend"):
        torch.manual_seed(0)
        runs[tokens] = align.train(
            out,
            out.parent / f"aligner-{tokens}",
            dsp.DEFAULT,
            steps=args.steps,
            token_source=tokens,
            progress=False,
        )
    cov = m["coverage"]
    print(f"# data pipeline, {args.sentences} sentences (seed 1), {os.cpu_count()} cores, CPU\n")
    print("| stage | figure |")
    print("|---|---:|")
    print(f"| Festival corpus build | {t_corpus:.0f} s ({audio_min:.1f} min of audio) |")
    print(f"| feature cache (log-mel, f0, energy) | {t_feat:.1f} s |")
    print(f"| corpus + features | {(t_corpus + t_feat) / 60:.1f} min |")
    print(
        f"| coverage | {cov['phones']:.0%} of phones, {cov['diphones']} diphones, "
        f"{cov['distinct_words']} distinct words |"
    )
    for tokens, r in runs.items():
        print(
            f"| aligner ({tokens} tokens), {r['steps']} steps | {r['train_seconds']:.0f} s; "
            f"boundary error mean {r['boundary_mae_ms']:.1f} ms, median "
            f"{r['boundary_median_ms']:.1f} ms, p90 {r['boundary_p90_ms']:.1f} ms "
            f"({r['boundaries']} boundaries, {r['held_out_items']} held-out items) |"
        )
    (out.parent / "bench_data.json").write_text(
        json.dumps(
            {"corpus_s": t_corpus, "features_s": t_feat, "coverage": cov, "aligner": runs}, indent=2
        )
    )


if __name__ == "__main__":
    main()
