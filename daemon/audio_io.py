"""Reading and writing audio files for the CLI: any rate and channel count in, mono out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


class AudioFileError(ValueError):
    """An audio file cannot be used; the message names the file and what to do."""

    user_error = True  # the CLI prints the message, without a traceback


def read_mono(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read ``path`` as float32 mono at ``sample_rate`` (downmixed and resampled as needed)."""
    try:
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioFileError(
            f"{path}: cannot read audio ({e}); give a wav, flac or ogg file"
        ) from None
    if y.shape[0] == 0:
        raise AudioFileError(f"{path}: the file holds no samples")
    y = y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]
    if not np.isfinite(y).all():
        raise AudioFileError(f"{path}: the audio holds NaN or infinite samples")
    if sr != sample_rate:
        y = soxr.resample(y, sr, sample_rate, quality="HQ")
    return np.ascontiguousarray(y, dtype=np.float32)


def write(path: str | Path, y: np.ndarray, sample_rate: int) -> None:
    """Write mono float audio; 16-bit PCM for .wav, the format's default otherwise."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise AudioFileError(f"{path}: the folder {path.parent} does not exist")
    subtype = "PCM_16" if path.suffix.lower() == ".wav" else None
    try:
        sf.write(str(path), np.clip(y, -1.0, 1.0), sample_rate, subtype=subtype)
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError, ValueError) as e:
        raise AudioFileError(f"{path}: cannot write audio ({e}); use a .wav name") from None


def play(y: np.ndarray, sample_rate: int, fallback: str | Path = "melgand-out.wav") -> str:
    """Play on the default output and wait; with no output device, write ``fallback``.

    Returns a line saying where the sound went and why.
    """
    from daemon import devices

    outputs, problem = devices.outputs()
    default = next((d for d in outputs if d.is_default), None)
    if default is None:
        write(fallback, y, sample_rate)
        why = problem or "no audio output device"
        return f"{why}: wrote {Path(fallback).resolve()} instead"
    import sounddevice as sd

    sd.play(np.clip(y, -1, 1), sample_rate, device=default.index, blocking=True)
    return f"played on {default.name} ({default.hostapi})"
