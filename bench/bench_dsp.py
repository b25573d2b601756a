"""dsp speed beside librosa, in one run (ratios: this machine is shared and noisy).

    .venv/bin/python bench/bench_dsp.py            # prints a markdown table

Times are medians over repeats, after a warm-up call, so JIT compilation is kept out of
them; compile time is measured separately in fresh processes, cold (empty numba cache)
and warm (cache filled by the cold run).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time

import librosa
import numpy as np

import dsp

SR = 22050
BASIS = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=80, fmin=0, fmax=8000)


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def side_by_side(ref, ours, repeats: int) -> tuple[float, float]:
    """Median times of two callables, in alternating rounds so that both see the same load
    (rounds of several calls, with a pause between: OpenBLAS threads left spinning by
    librosa's matrix product would otherwise slow whatever runs next)."""
    t_ref, t_ours = [], []
    for _ in range(5):
        for fn, ts in ((ref, t_ref), (ours, t_ours)):
            time.sleep(0.3)
            fn()  # warm-up of this round
            for _ in range(max(repeats // 5, 1)):
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
    return float(np.median(t_ref)), float(np.median(t_ours))


def librosa_log_mel(y: np.ndarray) -> np.ndarray:
    """The librosa pipeline that computes the same numbers as dsp.log_mel."""
    S = librosa.stft(np.pad(y, 384, mode="reflect"), n_fft=1024, hop_length=256, center=False)
    return np.log(np.maximum(BASIS @ np.abs(S), 1e-5))


def log_mel_one_core(y: np.ndarray) -> np.ndarray:
    """dsp.log_mel without splitting the frames over the cores."""
    from dsp import mel, spectral

    c = dsp.DEFAULT
    lo, hi, w = mel._sparse(c)
    n = c.n_frames(y.size)
    out = np.empty((c.n_mels, n), np.float32)
    win = spectral.window(c.n_fft, c.win_length).astype(np.float32)
    mel._log_mel_kernel(
        spectral.pad(y, c), win, c.hop_length, 0, n, lo, hi, w, np.float32(c.log_clamp), out
    )
    return out


def per_hop_ours(y: np.ndarray, hops: int) -> None:
    a = dsp.Analyzer()
    st = None
    for i in range(hops):
        _, st = a.stream(y[i * 256 : (i + 1) * 256], st)


def per_hop_librosa(y: np.ndarray, hops: int) -> None:
    for i in range(4, hops):
        frame = y[(i - 4) * 256 : i * 256]
        S = librosa.stft(frame, n_fft=1024, hop_length=256, center=False)
        np.log(np.maximum(BASIS @ np.abs(S), 1e-5))


def compile_times() -> tuple[float, float]:
    code = (
        "import time, numpy as np; t=time.perf_counter(); import dsp; "
        "y=np.random.default_rng(0).standard_normal(22050).astype(np.float32); "
        "dsp.log_mel(y); dsp.Analyzer().stream(y[:2000]); "
        "print(time.perf_counter()-t)"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        root = os.path.join(os.path.dirname(__file__), "..")
        out = [
            float(
                subprocess.run(
                    [sys.executable, "-c", code],
                    env=env,
                    cwd=root,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(2)
        ]
    return out[0], out[1]


def festival_sentence() -> np.ndarray | None:
    """Held-out-style speech for the quality table: Festival's slt voice, at 22050 Hz."""
    import shutil

    import soundfile as sf
    import soxr

    if shutil.which("text2wave") is None:
        return None
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        text = b"The quick brown fox jumps over the lazy dog. Melgand speaks and sings, live."
        subprocess.run(
            ["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "-o", f.name],
            input=text,
            check=True,
            capture_output=True,
        )
        y, sr = sf.read(f.name, dtype="float32")
    return soxr.resample(y, sr, SR).astype(np.float32)


def sc_db(y: np.ndarray, mag: np.ndarray) -> float:
    """Spectral convergence of ``y`` against the target magnitude, dB (lower is better)."""
    m = np.abs(dsp.stft(y.astype(np.float64)))
    return float(20 * np.log10(np.linalg.norm(m - mag) / np.linalg.norm(mag)))


def quality_table() -> None:
    y = festival_sentence()
    if y is None:
        print("\n(no Festival: quality table skipped; apt-get install festival festvox-us-slt-hts)")
        return
    mag = np.abs(dsp.stft(y.astype(np.float64)))
    mel = dsp.log_mel(y)
    print(
        f"\n# phase reconstruction, Festival slt sentence ({y.size / SR:.1f} s); "
        "spectral convergence in dB, lower is better\n"
    )
    print("| input | Griffin-Lim 32 (librosa) | Griffin-Lim 32 (dsp) | RTISI-LA (dsp, streaming) |")
    print("|---|---:|---:|---:|")
    lgl = librosa.griffinlim(
        mag, n_iter=32, hop_length=256, n_fft=1024, center=False, random_state=0
    )[384:-384]  # drop our convention's pad
    print(
        f"| true magnitude | {sc_db(lgl, mag):.1f} | "
        f"{sc_db(dsp.griffin_lim(mag), mag):.1f} | {sc_db(dsp.Rtisi().offline(mag), mag):.1f} |"
    )
    gl = dsp.DspVocoder(method="griffin_lim")(mel)
    rt = dsp.DspVocoder(method="rtisi")(mel)
    print(f"| log-mel (DSP vocoder) | | {sc_db(gl, mag):.1f} | {sc_db(rt, mag):.1f} |")


def main() -> None:
    rng = np.random.default_rng(0)
    y10 = (0.3 * rng.standard_normal(SR * 10)).astype(np.float32)
    rows = []

    ref, ours = side_by_side(lambda: librosa_log_mel(y10), lambda: dsp.log_mel(y10), 40)
    err = np.abs(dsp.log_mel(y10) - librosa_log_mel(y10)).max()
    rows.append(("log-mel, 10 s of audio", ref * 1e3, ours * 1e3, "ms", f"max |diff| {err:.1e}"))
    ref1, one_core = side_by_side(lambda: librosa_log_mel(y10), lambda: log_mel_one_core(y10), 40)
    rows.append(("log-mel, 10 s of audio, one core", ref1 * 1e3, one_core * 1e3, "ms", ""))

    hops = 400
    ref, ours = side_by_side(lambda: per_hop_librosa(y10, hops), lambda: per_hop_ours(y10, hops), 7)
    ref, ours = ref / (hops - 4), ours / hops
    rows.append(("streaming log-mel, per 256-sample hop", ref * 1e6, ours * 1e6, "us", ""))

    mag = np.abs(dsp.stft(y10))
    mel = dsp.log_mel(y10)
    gl, ours = side_by_side(
        lambda: librosa.griffinlim(mag, n_iter=32, hop_length=256, n_fft=1024, center=False),
        lambda: dsp.griffin_lim(mag, n_iter=32),
        3,
    )
    rows.append(("Griffin-Lim 32 iter, 10 s", gl * 1e3, ours * 1e3, "ms", ""))
    rt = median_time(lambda: dsp.Rtisi().offline(mag), 3)
    voc = dsp.DspVocoder()
    st = None

    def chunks():
        nonlocal st
        st = None
        for i in range(0, mel.shape[1], 2):
            _, st = voc.stream(mel[:, i : i + 2], st)

    per_chunk = median_time(chunks, 3) / (mel.shape[1] / 2)

    cold, warm = compile_times()
    print(
        f"# dsp speed, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"numpy {np.__version__}, librosa {librosa.__version__}\n"
    )
    print("| what | librosa | melgand dsp | unit | speed-up | note |")
    print("|---|---:|---:|---|---:|---|")
    for what, r, o, unit, note in rows:
        print(f"| {what} | {r:.2f} | {o:.2f} | {unit} | {r / o:.1f}x | {note} |")
    print()
    print("| DSP vocoder (melgand) | figure |")
    print("|---|---:|")
    print(f"| RTISI-LA (look-ahead 2, 4 iter), 10 s | {10 / rt:.1f}x real time |")
    print(f"| DSP vocoder streaming, per 2-frame chunk (23.2 ms) | {per_chunk * 1e3:.2f} ms |")
    print(f"| DSP vocoder latency (delay) | {voc.delay} samples = {voc.delay / SR * 1e3:.1f} ms |")
    print(f"| import + first log-mel, cold numba cache (JIT compile) | {cold:.2f} s |")
    print(f"| import + first log-mel, warm numba cache | {warm:.2f} s |")
    quality_table()


if __name__ == "__main__":
    main()
