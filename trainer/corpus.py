"""The teacher corpus: generated sentences spoken by Festival, in the LJSpeech layout.

Layout of DIR (documented in the README and in DIR/README.txt):

    corpus.json          what was asked (seed, sentences, voice, pitch shifts), coverage
    metadata.csv         id|text|normalized text, one row per utterance (LJSpeech)
    wavs/<id>.wav        22050 Hz mono 16-bit PCM
    segments/<id>.lab    Festival's phone segments: "start end phone" a line, seconds

Pitch-shifted copies (WORLD resynthesis) have ids ``<id>_ps+N`` / ``<id>_ps-N`` (N
semitones), share the text and the segment times of their source, and are listed under
``pitch_shifts`` in corpus.json. Interrupted builds resume: finished items (wav and lab both
written, each atomically) are kept.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from model.text_norm import normalize
from trainer import sentences as _sentences

FORMAT = 1
VOICE = "cmu_us_slt_arctic_hts"
SAMPLE_RATE = 22050
BATCH = 16  # sentences per Festival process

README = """melgand teacher corpus (made by `melgand corpus festival`).
metadata.csv: id|text|normalized text (LJSpeech layout); wavs/<id>.wav: 22050 Hz mono PCM16.
segments/<id>.lab: Festival's phone segments, one per line: start end phone (seconds,
the first starting at 0, 'pau' for silence). Ids ending _ps+N / _ps-N are WORLD pitch-shifted
copies (N semitones) of the item before the suffix, with the same text and segment times.
Ids ending _sung are sung copies (trainer/sung.py): the item re-timed onto a generated melody,
segments/<id>_sung.lab its sung phone times, f0/<id>_sung.npy the f0 it was sung at (Hz, 0
unvoiced, hop-256 frames), notes/<id>_sung.json the melody.
"""


class CorpusError(RuntimeError):
    """The corpus cannot be built here; the message says why and what to do."""

    user_error = True  # the CLI prints the message, without a traceback


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    normalized: str


def _manifest(n: int, seed: int, shifts: list[int], voice: str = VOICE) -> dict:
    return {
        "format": FORMAT,
        "generator": _sentences.GENERATOR_VERSION,
        "seed": seed,
        "sentences": n,
        "voice": voice,
        "sample_rate": SAMPLE_RATE,
        "pitch_shifts": sorted(shifts),
    }


def _check_dir(out: Path, want: dict) -> None:
    manifest = out / "corpus.json"
    if manifest.exists():
        have = json.loads(manifest.read_text())
        same = {k: have.get(k) for k in want} == want
        if not same:
            raise CorpusError(
                f"{out} holds a different corpus (seed {have.get('seed')}, "
                f"{have.get('sentences')} sentences, pitch shifts {have.get('pitch_shifts')}); "
                "choose another --out, or delete it to rebuild"
            )
    elif out.exists() and any(out.iterdir()):
        raise CorpusError(f"{out} is not empty and is not a melgand corpus; choose another --out")


def check_festival() -> None:
    if shutil.which("festival") is None:
        raise CorpusError("Festival is not installed: apt-get install festival festvox-us-slt-hts")
    probe = subprocess.run(
        ["festival", "--batch", f"(voice_{VOICE})"], capture_output=True, text=True, timeout=120
    )
    if probe.returncode != 0 or "not defined" in probe.stderr + probe.stdout:
        raise CorpusError(f"Festival has no {VOICE} voice: apt-get install festvox-us-slt-hts")


def _scheme_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _synth_batch(items: list[Item], out: Path) -> list[tuple[Item, str | None]]:
    """Speak ``items`` in one Festival process; write wav + lab for each; (item, error)."""
    with tempfile.TemporaryDirectory(prefix="melgand-festival-") as tmp:
        lines = [
            f"(voice_{VOICE})",
            """(define (mg-synth id text path)
  (let ((utt (SynthText text)))
    (utt.save.wave utt path 'riff)
    (format t "UTT %s\\n" id)
    (mapcar (lambda (s) (format t "SEG %s %f\\n" (item.name s) (item.feat s "end")))
            (utt.relation.items utt 'Segment))
    (format t "END %s\\n" id)))""",
        ]
        for it in items:
            lines.append(
                f"(mg-synth {_scheme_string(it.id)} {_scheme_string(it.normalized)} "
                f"{_scheme_string(str(Path(tmp) / (it.id + '.wav')))})"
            )
        script = Path(tmp) / "batch.scm"
        script.write_text("\n".join(lines) + "\n")
        proc = subprocess.run(
            ["festival", "--batch", str(script)],
            capture_output=True,
            text=True,
            timeout=60 + 30 * len(items),
        )
        segs: dict[str, list[tuple[str, float]]] = {}
        done: set[str] = set()
        current = None
        for line in proc.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "UTT":
                current = parts[1]
                segs[current] = []
            elif len(parts) == 3 and parts[0] == "SEG" and current:
                segs[current].append((parts[1], float(parts[2])))
            elif len(parts) == 2 and parts[0] == "END":
                done.add(parts[1])
        results = []
        for it in items:
            wav = Path(tmp) / (it.id + ".wav")
            if it.id not in done or not wav.exists() or not segs.get(it.id):
                err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                results.append((it, f"Festival failed: {err}"))
                continue
            y, sr = sf.read(wav, dtype="float32")
            y = soxr.resample(y, sr, SAMPLE_RATE, quality="HQ") if sr != SAMPLE_RATE else y
            _write_item(out, it.id, y, segs[it.id])
            results.append((it, None))
        return results


def _write_item(out: Path, item_id: str, y: np.ndarray, segs: list[tuple[str, float]]) -> None:
    """The lab, then the wav, each through a temp file and a rename: both or neither."""
    lab, start = [], 0.0
    for phone, end in segs:
        lab.append(f"{start:.4f} {end:.4f} {phone}")
        start = end
    _atomic_text(out / "segments" / f"{item_id}.lab", "\n".join(lab) + "\n")
    tmp = out / "wavs" / f".{item_id}.tmp.wav"
    sf.write(tmp, np.clip(y, -1, 1), SAMPLE_RATE, subtype="PCM_16")
    os.replace(tmp, out / "wavs" / f"{item_id}.wav")


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _is_done(out: Path, item_id: str) -> bool:
    return (out / "wavs" / f"{item_id}.wav").exists() and (
        out / "segments" / f"{item_id}.lab"
    ).exists()


def pitch_shift(y: np.ndarray, semitones: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """WORLD analysis (DIO + StoneMask, CheapTrick, D4C) and resynthesis at f0 * 2^(s/12)."""
    with warnings.catch_warnings():  # pyworld imports the deprecated pkg_resources
        warnings.simplefilter("ignore", UserWarning)
        import pyworld

    x = y.astype(np.float64)
    f0, t = pyworld.dio(x, sr, frame_period=5.0)
    f0 = pyworld.stonemask(x, f0, t, sr)
    sp = pyworld.cheaptrick(x, f0, t, sr)
    ap = pyworld.d4c(x, f0, t, sr)
    out = pyworld.synthesize(f0 * 2.0 ** (semitones / 12.0), sp, ap, sr, frame_period=5.0)
    return out[: y.size].astype(np.float32)


def _shift_item(out: Path, it: Item, semitones: int) -> str:
    sid = f"{it.id}_ps{semitones:+d}"
    if not _is_done(out, sid):
        y, _ = sf.read(out / "wavs" / f"{it.id}.wav", dtype="float32")
        lab = (out / "segments" / f"{it.id}.lab").read_text()
        _atomic_text(out / "segments" / f"{sid}.lab", lab)
        tmp = out / "wavs" / f".{sid}.tmp.wav"
        sf.write(tmp, np.clip(pitch_shift(y, semitones), -1, 1), SAMPLE_RATE, subtype="PCM_16")
        os.replace(tmp, out / "wavs" / f"{sid}.wav")
    return sid


def build(
    out: Path,
    n: int,
    seed: int,
    pitch_shifts: list[int] | None = None,
    jobs: int | None = None,
    progress: bool = True,
) -> dict:
    """Build (or resume) the corpus in ``out``; returns its manifest with coverage (sung
    copies: :func:`trainer.sung.make_sung` after it, then :func:`add_sung`)."""
    shifts = sorted(set(pitch_shifts or []))
    if 0 in shifts or any(abs(s) > 12 for s in shifts):
        raise CorpusError(f"pitch shifts must be non-zero semitones within +-12, got {shifts}")
    want = _manifest(n, seed, shifts)
    _check_dir(out, want)
    check_festival()
    jobs = jobs or os.cpu_count() or 1
    items, todo, manifest = start_build(out, n, seed, want, README)
    failed: dict[str, str] = {}
    bar = tqdm(
        total=len(items),
        initial=len(items) - len(todo),
        desc="festival",
        unit="utt",
        disable=not progress,
    )
    with ThreadPoolExecutor(jobs) as pool:
        size = max(1, min(BATCH, -(-len(todo) // jobs)))  # every core busy, even for a few
        futs = [
            pool.submit(_synth_batch, todo[i : i + size], out) for i in range(0, len(todo), size)
        ]
        for f in as_completed(futs):
            for it, err in f.result():
                if err:
                    failed[it.id] = err
                bar.update(1)
    bar.close()
    rows = [it for it in items if it.id not in failed]
    if shifts:
        jobs_list = [(it, s) for it in rows for s in shifts]
        bar = tqdm(total=len(jobs_list), desc="pitch shift", unit="utt", disable=not progress)
        shifted: dict[tuple[str, int], str] = {}
        with ThreadPoolExecutor(jobs) as pool:
            futs2 = {pool.submit(_shift_item, out, it, s): (it.id, s) for it, s in jobs_list}
            for f in as_completed(futs2):
                shifted[futs2[f]] = f.result()
                bar.update(1)
        bar.close()
        rows = [
            r
            for it in rows
            for r in [it] + [Item(shifted[(it.id, s)], it.text, it.normalized) for s in shifts]
        ]
    return finish_build(out, rows, manifest, failed)


def start_build(out: Path, n: int, seed: int, want: dict, readme: str,
                **extra) -> tuple[list[Item], list[Item], dict]:  # fmt: skip
    """A teacher corpus's first steps (Festival's and Piper's alike): its ``n`` sentences
    from ``seed`` as items, its folders and README, the manifest ``want`` (plus ``extra``
    and the coverage) written as not yet complete, and the items not made yet (a resumed
    build skips the rest)."""
    sel = _sentences.generate(n, seed)
    width = max(4, len(str(n)))
    items = [
        Item(f"s{seed}_{i + 1:0{width}d}", s, normalize(s)) for i, s in enumerate(sel.sentences)
    ]
    for sub in ("wavs", "segments"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    manifest = {**want, **extra, "coverage": sel.coverage, "complete": False}
    _atomic_text(out / "corpus.json", json.dumps(manifest, indent=2))
    (out / "README.txt").write_text(readme)
    return items, [it for it in items if not _is_done(out, it.id)], manifest


def finish_build(out: Path, rows: list[Item], manifest: dict, failed: dict, **extra) -> dict:
    """A teacher corpus's last steps: ``metadata.csv`` of the items made, and the manifest
    (plus ``extra``) written complete unless some failed."""
    _atomic_text(out / "metadata.csv", "".join(f"{r.id}|{r.text}|{r.normalized}\n" for r in rows))
    manifest.update(complete=not failed, items=len(rows), failed=failed, **extra)
    _atomic_text(out / "corpus.json", json.dumps(manifest, indent=2))
    return manifest


def sung_record(out: Path) -> dict | None:
    """The ``sung`` record of the corpus manifest in ``out`` (None: no manifest, or no sung
    copies recorded), read before a build rewrites the manifest; for :func:`add_sung`."""
    manifest = out / "corpus.json"
    return json.loads(manifest.read_text()).get("sung") if manifest.exists() else None


def add_sung(out: Path, manifest: dict, sung_items: dict, before: dict | None = None) -> dict:
    """Record the sung copies (:func:`trainer.sung.make_sung`'s summary) in the manifest, with
    the registers of the builds that made them (``sung.history``; ``before``: the manifest's
    ``sung`` record before this build, which the build itself rewrites)."""
    before = before or {}
    history = before.get("history") or (
        [{"items": before["items"], "register": before.get("register")}] if before else []
    )
    history = [h for h in history if h["items"] < sung_items["items"]]
    history.append({"items": sung_items["items"], "register": sung_items.get("register")})
    sung = dict(sung_items, history=history)
    manifest = dict(manifest, sung=sung, items=manifest["items"] + sung_items["items"])
    _atomic_text(out / "corpus.json", json.dumps(manifest, indent=2))
    return manifest


def read_segments(path: Path) -> list[tuple[float, float, str]]:
    """A segments/<id>.lab file as (start, end, phone) tuples."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if len(parts) != 3:
            raise ValueError(f"{path}, line {n}: expected 'start end phone', got {line!r}")
        out.append((float(parts[0]), float(parts[1]), parts[2]))
    return out
