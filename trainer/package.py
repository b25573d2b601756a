"""Packaging a trained checkpoint beside the voices: `python -m trainer.package`.

    python -m trainer.package KIND SRC DST [--provenance JSON] [--metrics JSON] [--set KEY=JSON]
                              [--half]

Copies the checkpoint ``SRC`` (its weights unchanged) to ``DST`` with the command and
corpus that made it and its measured scores merged into the header, readable by everyone
(a run's checkpoints are written private). ``--set`` writes an inference setting into the
header (e.g. the harmonic vocoder's ``noise_gate=-8.5``). ``--half`` stores the float
weights as float16: half the file, loaded back as float32 (``model.checkpoint``); measure
the packaged model, as the rounding moves its output a little.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from model import checkpoint

# the parts of a header that are the checkpoint's own, never set by --set
OWN = ("kind", "kwargs", "convention", "provenance", "metrics", "sha256", "stored_dtype")


def package(kind: str, src: Path, dst: Path, provenance: dict, metrics: dict,
            settings: dict | None = None, half: bool = False) -> Path:  # fmt: skip
    tensors, header = checkpoint.load(src, kind=kind)
    if half:
        tensors = {k: t.half() if t.is_floating_point() else t for k, t in tensors.items()}
        big = [k for k, t in tensors.items() if t.is_floating_point() and not t.isfinite().all()]
        if big:
            raise SystemExit(f"--half: {src}: {big[:3]} exceed float16's range (65504); "
                             "package it without --half")  # fmt: skip
    for key in settings or {}:
        if key in OWN:
            raise SystemExit(f"--set {key}: that part of the header is the checkpoint's own")
    header.update(settings or {})
    header["provenance"] = {**header.get("provenance", {}), **provenance}
    header["metrics"] = {**header.get("metrics", {}), **metrics}
    header.pop("format_version", None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save(dst, tensors, header)
    os.chmod(dst, 0o644)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=("acoustic", "vocoder"))
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--provenance", type=json.loads, default={})
    ap.add_argument("--metrics", type=json.loads, default={})
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", dest="settings")
    ap.add_argument("--half", action="store_true", help="store float weights as float16")
    a = ap.parse_args()
    settings = {}
    for s in a.settings:
        key, sep, value = s.partition("=")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            raise SystemExit(f"--set {s}: want KEY=JSON (e.g. noise_gate=-8.5)") from None
        if not sep or not key:
            raise SystemExit(f"--set {s}: want KEY=JSON (e.g. noise_gate=-8.5)")
    print(package(a.kind, a.src, a.dst, a.provenance, a.metrics, settings, a.half))


if __name__ == "__main__":
    main()
