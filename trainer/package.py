"""Packaging a trained checkpoint beside the voices: `python -m trainer.package`.

    python -m trainer.package KIND SRC DST [--provenance JSON] [--metrics JSON]

Copies the checkpoint ``SRC`` (weights unchanged, float32) to ``DST`` with the command and
corpus that made it and its measured scores merged into the header, readable by everyone
(a run's checkpoints are written private).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from model import checkpoint


def package(kind: str, src: Path, dst: Path, provenance: dict, metrics: dict) -> Path:
    tensors, header = checkpoint.load(src, kind=kind)
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
    a = ap.parse_args()
    print(package(a.kind, a.src, a.dst, a.provenance, a.metrics))


if __name__ == "__main__":
    main()
