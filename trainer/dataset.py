"""LJSpeech-layout datasets: ``metadata.csv`` (``id|text|normalized text``) + ``wavs/<id>.wav``.

:func:`check` reads every row and its audio and says, by id, what is wrong: bad rows are
skipped and counted, never dropped silently; fixable audio (another sample rate, stereo)
is fixed and noted; clipped audio is kept with a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from model.frontend import Frontend
from model.text_norm import normalize

CLIP_LEVEL = 0.999
CLIP_FRACTION = 1e-3  # more than 0.1 % of samples at full scale: "clipped"


@dataclass(frozen=True)
class Row:
    id: str
    text: str
    normalized: str
    line: int

    @property
    def wav(self) -> str:
        return f"wavs/{self.id}.wav"


@dataclass
class Report:
    rows: int = 0
    good: list[Row] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # id (or "line N") -> reason
    notes: dict[str, list[str]] = field(default_factory=dict)  # id -> fixes and warnings

    def note(self, item: str, what: str) -> None:
        self.notes.setdefault(item, []).append(what)


class DatasetError(ValueError):
    """The dataset cannot be used at all (no metadata.csv, nothing readable)."""

    user_error = True  # the CLI prints the message, without a traceback


def read_rows(root: Path, report: Report) -> list[Row]:
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise DatasetError(
            f"{meta} not found: an LJSpeech-layout dataset has metadata.csv "
            "(id|text|normalized text) and wavs/<id>.wav"
        )
    rows: list[Row] = []
    first_line: dict[str, int] = {}
    try:
        lines = meta.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DatasetError(f"{meta}: not UTF-8 text ({e})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        report.rows += 1
        parts = line.split("|")
        item = parts[0].strip()
        if len(parts) < 2 or not item:
            report.skipped[f"line {n}"] = f"{meta.name}, line {n}: expected id|text|normalized text"
            continue
        if item in first_line:
            report.skipped[f"{item} (line {n})"] = (
                f"duplicate id (first at line {first_line[item]})"
            )
            continue
        first_line[item] = n
        if "/" in item or "\\" in item or item.startswith("."):
            report.skipped[item] = f"line {n}: an id names a file in wavs/, not a path"
            continue
        text = parts[1].strip()
        norm = parts[2].strip() if len(parts) > 2 else ""
        if not text and not norm:
            report.skipped[item] = f"line {n}: empty text"
            continue
        rows.append(Row(item, text or norm, norm or normalize(text), n))
    return rows


def load_audio(root: Path, row: Row, sample_rate: int, report: Report) -> np.ndarray | None:
    """The row's audio as float32 mono at ``sample_rate``, or None (reason in the report)."""
    path = root / row.wav
    if not path.is_file():
        report.skipped[row.id] = f"wav missing ({row.wav})"
        return None
    try:
        y, sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        report.skipped[row.id] = f"unreadable audio ({row.wav}: {e})"
        return None
    if y.shape[0] == 0:
        report.skipped[row.id] = f"empty audio ({row.wav})"
        return None
    if not np.isfinite(y).all():
        report.skipped[row.id] = f"NaN or infinite samples ({row.wav})"
        return None
    if y.shape[1] > 1:
        report.note(row.id, f"{y.shape[1]} channels, downmixed")
        y = y.mean(axis=1, keepdims=True)
    y = y[:, 0]
    clipped = int((np.abs(y) >= CLIP_LEVEL).sum())
    if clipped > CLIP_FRACTION * y.size:
        report.note(row.id, f"clipped: {clipped} samples at full scale (kept)")
    if sr != sample_rate:
        report.note(row.id, f"{sr} Hz, resampled to {sample_rate}")
        y = soxr.resample(y, sr, sample_rate, quality="HQ").astype(np.float32)
    if np.abs(y).max() == 0:
        report.skipped[row.id] = f"silent audio ({row.wav})"
        return None
    return np.ascontiguousarray(y)


def check(
    root: Path,
    sample_rate: int,
    visit: Callable[[Row, np.ndarray], None] | None = None,
    map_fn: Callable[..., Iterator] = map,
) -> Report:
    """Check every row; ``visit(row, audio)`` is called for each good one (e.g. features).

    ``map_fn`` runs the per-row work (pass an executor's ``map`` to use several cores).
    """
    report = Report()
    rows = read_rows(root, report)

    def one(row: Row) -> Row | None:
        y = load_audio(root, row, sample_rate, report)
        if y is None:
            return None
        if visit is not None:
            visit(row, y)
        return row

    report.good = [r for r in map_fn(one, rows) if r is not None]
    return report


TOKEN_SOURCES = ("frontend", "segments", "chars")


def frontend_for(token_source: str, rows: list[Row]) -> Frontend:
    """Phones for "frontend" and "segments"; for "chars", the alphabet of the rows' text."""
    if token_source not in TOKEN_SOURCES:
        raise ValueError(f"unknown token source {token_source!r}; select one of {TOKEN_SOURCES}")
    return Frontend.for_texts(r.text for r in rows) if token_source == "chars" else Frontend()


def token_units(root: Path, row: Row, token_source: str, fe: Frontend) -> list[str]:
    """A row's tokens: frontend phones of its normalized text, a Festival corpus's segment
    phones (names only), or the characters of its text (no English normalization)."""
    if token_source == "segments":
        from trainer.corpus import read_segments

        return [p for *_, p in read_segments(root / "segments" / f"{row.id}.lab")]
    return fe.units(row.text if token_source == "chars" else row.normalized)
