"""The feature cache: log-mel, f0 and voicing, and energy for every good row of a dataset.

Stored in ``DATASET/.melgand/features-<key>/<id>.npz`` (plain arrays, loaded with
``allow_pickle=False``), where ``<key>`` hashes the audio convention and the feature
version: change either and the cache is rebuilt (stale caches are removed). Finished items
are kept across interruptions (each file is written to a temp name, then renamed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

import dsp
from trainer import dataset

FEATURE_VERSION = 2  # 2: YIN with centred windows, hysteresis voicing (pyin-like)
YIN = {
    "fmin": 60.0,
    "fmax": 1000.0,
    "threshold": 0.15,
    "loose_threshold": 0.5,
    "quiet_db": -45.0,
    "min_run": 3,
    "max_gap": 2,
    "max_jump_cents": 200.0,
}


def cache_key(conv: dsp.Convention) -> str:
    blob = json.dumps(
        {"convention": conv.to_dict(), "version": FEATURE_VERSION, "yin": YIN}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def cache_dir(root: Path, conv: dsp.Convention) -> Path:
    return root / ".melgand" / f"features-{cache_key(conv)}"


def compute(y: np.ndarray, conv: dsp.Convention) -> dict[str, np.ndarray]:
    mel = dsp.log_mel(y, conv)
    f0, voiced = dsp.yin(y, conv, **YIN)
    return {"mel": mel, "f0": f0, "voiced": voiced, "energy": dsp.log_energy(y, conv)}


@dataclass
class Prepared:
    report: dataset.Report
    cache: Path
    built: int
    reused: int


def prepare(
    root: Path, conv: dsp.Convention, jobs: int | None = None, progress: bool = True
) -> Prepared:
    """Check the dataset and build (or reuse) its feature cache."""
    root = Path(root)
    out = cache_dir(root, conv)
    for stale in (root / ".melgand").glob("features-*"):
        if stale != out:
            shutil.rmtree(stale)
    out.mkdir(parents=True, exist_ok=True)
    (out / "convention.json").write_text(
        json.dumps({"convention": conv.to_dict(), "version": FEATURE_VERSION, "yin": YIN}, indent=2)
    )
    counts = {"built": 0, "reused": 0}
    meta = root / "metadata.csv"
    text = meta.read_text(encoding="utf-8", errors="replace") if meta.is_file() else ""
    n_rows = sum(1 for line in text.splitlines() if line.strip())
    bar = tqdm(total=n_rows, desc="features", unit="utt", disable=not progress)

    def visit(row: dataset.Row, y: np.ndarray) -> None:
        target = out / f"{row.id}.npz"
        if target.exists():
            counts["reused"] += 1
        else:
            tmp = out / f".{row.id}.{os.getpid()}.tmp.npz"  # processes may share a cache
            np.savez(tmp, **compute(y, conv))
            os.replace(tmp, target)
            counts["built"] += 1
        bar.update(1)

    with ThreadPoolExecutor(jobs or os.cpu_count() or 1) as pool:
        report = dataset.check(root, conv.sample_rate, visit, pool.map)
    bar.close()
    index = {"good": [r.id for r in report.good], "skipped": report.skipped, "notes": report.notes}
    (out / "index.json").write_text(json.dumps(index, indent=2))
    return Prepared(report, out, counts["built"], counts["reused"])


def load(cache: Path, item_id: str) -> dict[str, np.ndarray]:
    """One item's features; a broken file raises a ValueError naming it."""
    path = cache / f"{item_id}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in ("mel", "f0", "voiced", "energy")}
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(
            f"{path}: broken feature file ({e}); run `melgand prepare` again"
        ) from None
