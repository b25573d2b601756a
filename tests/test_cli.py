"""The `melgand` command line, run as a user runs it (a subprocess of the installed script)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import dsp
from daemon import audio_io, cli

MELGAND = str(Path(sys.executable).parent / "melgand")


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([MELGAND, *args], capture_output=True, text=True, env=env, timeout=300)


def test_version():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"melgand {version('melgand')}"


def subcommands() -> list[str]:
    action = next(a for a in cli.build_parser()._actions if a.dest == "command")
    return sorted(action.choices)


@pytest.mark.parametrize("sub", subcommands())
def test_every_subcommand_has_help(sub):
    r = run(sub, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: melgand {sub}")


def test_no_subcommand_is_a_usage_error():
    r = run()
    assert r.returncode == 2 and "required: COMMAND" in r.stderr


@pytest.mark.audio
def test_devices_lists_the_pulseaudio_null_sink(pulse_null_sink):
    r = run("devices", env=pulse_null_sink)
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if re.match(r"^\*\s+\d+\s", line)]
    assert len(rows) == 1, r.stdout  # exactly one default output
    assert "ALSA" in r.stdout and ("pulse" in r.stdout or "default" in r.stdout)


def test_devices_says_clearly_when_there_are_none(tmp_path):
    env = dict(os.environ, PULSE_SERVER=f"unix:{tmp_path}/no-such-socket")
    r = run("devices", env=env)
    assert r.returncode == 0
    assert "No audio output devices found" in r.stdout and "-o OUT.wav" in r.stdout


@pytest.mark.parametrize("vocoder", ["rtisi", "griffin_lim"])
def test_vocode_copy_synthesis_of_festival_speech(festival_speech, tmp_path, vocoder):
    out = tmp_path / "out.wav"
    r = run("vocode", str(festival_speech), "-o", str(out), "--vocoder", vocoder)
    assert r.returncode == 0, r.stderr
    assert f"with the {vocoder} vocoder" in r.stdout
    y, sr = sf.read(out, dtype="float32")
    ref = audio_io.read_mono(festival_speech, 22050)
    assert sr == 22050 and y.ndim == 1 and y.size == ref.size // 256 * 256
    a, b = dsp.log_mel(y), dsp.log_mel(ref)
    loud = b > np.log(1e-2)
    assert np.median(np.abs(a - b)[loud]) < 0.5  # it says the same thing


def test_vocode_takes_any_rate_and_channels(tmp_path):
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], 1) * 0.5
    src = tmp_path / "in.flac"
    sf.write(src, stereo, 44100)
    out = tmp_path / "out.wav"
    r = run("vocode", str(src), "-o", str(out))
    assert r.returncode == 0, r.stderr
    y, sr = sf.read(out)
    assert sr == 22050 and y.ndim == 1 and abs(y.size - 22050) <= 256
    spec = np.abs(np.fft.rfft(y[2048:-2048]))
    assert abs(np.argmax(spec) * 22050 / (y.size - 4096) - 440) < 5  # still an A


def test_vocode_uses_config_and_overrides(festival_speech, tmp_path):
    user = tmp_path / "my.toml"
    # [daemon] render_vocoder = "" hands the choice to [dsp_vocoder] method
    user.write_text(
        '[daemon]\nrender_vocoder = ""\n[dsp_vocoder]\nmethod = "griffin_lim"\n'
        "griffin_lim_iters = 2\n"
    )
    r = run("vocode", str(festival_speech), "-o", str(tmp_path / "a.wav"), "--config", str(user))
    assert r.returncode == 0 and "griffin_lim vocoder" in r.stdout
    r = run(
        "vocode",
        str(festival_speech),
        "-o",
        str(tmp_path / "b.wav"),
        "--config",
        str(user),
        "--set",
        "dsp_vocoder.method=rtisi",
    )
    assert r.returncode == 0 and "rtisi vocoder" in r.stdout


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (None, ["missing.wav", "-o", "o.wav"], "missing.wav: cannot read audio"),
        ("empty", ["empty.wav", "-o", "o.wav"], "empty.wav: the file holds no samples"),
        ("text", ["notes.wav", "-o", "o.wav"], "notes.wav: cannot read audio"),
        ("tone", ["tone.wav", "-o", "nodir/o.wav"], "the folder .*nodir does not exist"),
        ("tone", ["tone.wav", "-o", "o.wav", "--set", "audio.n_mels=0"], "n_mels must be >= 1"),
    ],
)
def test_vocode_errors_name_the_file_and_what_to_do(tmp_path, make, args, message):
    if make == "empty":
        sf.write(tmp_path / "empty.wav", np.zeros(0), 22050)
    elif make == "text":
        (tmp_path / "notes.wav").write_text("not audio")
    elif make == "tone":
        sf.write(tmp_path / "tone.wav", np.zeros(4000), 22050)
    r = subprocess.run([MELGAND, "vocode", *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("melgand vocode: error: ")
    assert re.search(message, r.stderr), r.stderr
    assert "Traceback" not in r.stderr


def test_train_device_flag_refuses_cuda_without_one(tmp_path, capsys):
    import torch

    from daemon import cli

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for what in ("acoustic", "vocoder"):
        code = cli.main(["train", what, "--data", str(tmp_path), "--run", str(tmp_path / "r"),
                         "--device", "cuda"])  # fmt: skip
        assert code == 2 and 'use "auto" or "cpu"' in capsys.readouterr().err
