"""Shared fixtures: test signals, the real PulseAudio null sink, Festival speech."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "melgand", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("melgand")

SR = 22050
# a second convention for the tests that must hold for more than the default one
SMALL = dict(
    sample_rate=16000, n_fft=512, win_length=400, hop_length=160, fmax=7600.0, n_mels=40, pad=120
)


def signal(kind: str, n: int, dtype=np.float64, seed: int = 0) -> np.ndarray:
    """Test signals: random (gaussian), tonal (partials + chirp), silence, full-scale noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    if kind == "random":
        y = 0.3 * rng.standard_normal(n)
    elif kind == "tonal":
        y = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1375.5 * t)
        y += 0.1 * np.sin(2 * np.pi * (300 + 2000 * t) * t)
    elif kind == "silence":
        y = np.zeros(n)
    elif kind == "fullscale":
        y = rng.uniform(-1.0, 1.0, n)
    else:
        raise ValueError(kind)
    return y.astype(dtype)


@pytest.fixture(scope="session")
def festival_speech(tmp_path_factory) -> Path:
    """A sentence spoken by Festival's cmu_us_slt_arctic_hts voice (installed by setup.sh)."""
    if shutil.which("text2wave") is None:
        pytest.fail("Festival's text2wave is missing: run `bash setup.sh test`, which installs it")
    out = tmp_path_factory.mktemp("festival") / "speech.wav"
    subprocess.run(
        ["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "-o", str(out)],
        input=b"The quick brown fox jumps over the lazy dog, twice.",
        check=True,
        capture_output=True,
    )
    return out


def start_pulse(run: Path):
    """A real PulseAudio daemon with a null sink ``melgand_test``, private to ``run``:
    ``(process, client environment (PULSE_SERVER, PULSE_SINK), log file)``."""
    if shutil.which("pulseaudio") is None:
        pytest.fail("pulseaudio is missing: run `bash setup.sh test`, which installs it")
    sock = run / "native"
    env = dict(os.environ, PULSE_RUNTIME_PATH=str(run), HOME=str(run), XDG_RUNTIME_DIR=str(run))
    log = (run / "pulseaudio.log").open("wb")
    proc = subprocess.Popen(
        [
            "pulseaudio",
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--use-pid-file=no",
            "--log-target=stderr",
            "--load=module-null-sink sink_name=melgand_test",
            f"--load=module-native-protocol-unix auth-anonymous=1 socket={sock}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    client_env = dict(os.environ, PULSE_SERVER=f"unix:{sock}", PULSE_SINK="melgand_test")
    deadline = time.monotonic() + 20
    while True:
        ok = subprocess.run(["pactl", "info"], env=client_env, capture_output=True).returncode == 0
        if ok:
            return proc, client_env, log
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            log.close()
            err = (run / "pulseaudio.log").read_text(errors="replace")
            pytest.fail(f"PulseAudio did not start: {err[-2000:]}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def pulse_null_sink(tmp_path_factory):
    """A real PulseAudio daemon with a null sink, private to the test session.

    Yields the environment (PULSE_SERVER, PULSE_SINK) that points clients at it.
    """
    proc, client_env, log = start_pulse(tmp_path_factory.mktemp("pulse"))
    yield client_env
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """`melgand corpus festival --sentences 12 --seed 3`, built once (do not modify: copy)."""
    from trainer import corpus

    out = tmp_path_factory.mktemp("corpus") / "c12"
    corpus.build(out, 12, 3, progress=False)
    return out


@pytest.fixture
def corpus_copy(tiny_corpus, tmp_path) -> Path:
    """A copy of the tiny corpus that a test may change (features, runs, damage)."""
    return Path(shutil.copytree(tiny_corpus, tmp_path / "c"))
