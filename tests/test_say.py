"""`melgand say`: text to a file, to a folder, and to the real (null) sound card."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import dsp
from trainer import acoustic

MELGAND = str(Path(sys.executable).parent / "melgand")


@pytest.fixture(scope="module")
def small_voice(tiny_corpus, tmp_path_factory) -> Path:
    """A small voice trained for a few steps on the tiny corpus (sounds bad, is real)."""
    base = tmp_path_factory.mktemp("voice")
    data = base / "c"
    shutil.copytree(tiny_corpus, data)
    acoustic.train(
        data,
        base / "run",
        dsp.DEFAULT,
        steps=30,
        batch_size=4,
        hidden=64,
        save_every=30,
        progress=False,
        held_out=0.2,
    )
    return base / "run" / "acoustic.safetensors"


def say(*args: str, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MELGAND, "say", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_say_to_a_file(small_voice, tmp_path):
    out = tmp_path / "hi.wav"
    r = say("Hello there, how are you?", "-o", str(out), "--voice", str(small_voice))
    assert r.returncode == 0, r.stderr
    y, sr = sf.read(out)
    assert sr == 22050 and y.ndim == 1 and y.size > 0.3 * sr
    assert np.sqrt(np.mean(y**2)) > 1e-3


def test_say_a_text_file_to_a_folder(small_voice, tmp_path):
    text = tmp_path / "lines.txt"
    text.write_text("First line.\n\n   \nSecond line!\nThird, and last.\n")
    r = say(
        "--text-file",
        str(text),
        "-o",
        str(tmp_path / "out"),
        "--voice",
        str(small_voice),
        "--vocoder",
        "griffin_lim",
    )
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "0001.wav",
        "0002.wav",
        "0003.wav",
    ]
    assert "3 of 3 lines spoken" in r.stdout


def test_say_without_a_sound_card_writes_a_file(small_voice, tmp_path):
    env = dict(os.environ, PULSE_SERVER=f"unix:{tmp_path}/none")
    r = say("No speakers here.", "--voice", str(small_voice), env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no audio output device: wrote" in r.stdout
    assert sf.info(tmp_path / "melgand-out.wav").frames > 0


@pytest.mark.audio
def test_say_plays_on_the_sound_card(small_voice, pulse_null_sink, tmp_path):
    rec = tmp_path / "monitor.wav"
    parec = subprocess.Popen(
        [
            "parecord",
            "--device=melgand_test.monitor",
            "--channels=1",
            "--rate=22050",
            "--file-format=wav",
            str(rec),
        ],
        env=pulse_null_sink,
    )
    time.sleep(0.5)
    r = say("Can you hear me now?", "--voice", str(small_voice), env=pulse_null_sink)
    time.sleep(0.5)
    parec.send_signal(signal.SIGINT)
    parec.wait(timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("played on")
    y, _ = sf.read(rec)
    assert np.abs(y).max() > 0.01  # the sound reached the card


def test_a_voice_of_another_convention_is_refused(small_voice, tmp_path):
    r = say(
        "Hello.",
        "-o",
        str(tmp_path / "x.wav"),
        "--voice",
        str(small_voice),
        "--set",
        "audio.fmax=7600",
    )
    assert r.returncode == 2
    assert "different audio convention (fmax: voice" in r.stderr


def test_text_and_text_file_are_exclusive(small_voice, tmp_path):
    r = say("--voice", str(small_voice))
    assert r.returncode == 2 and "give TEXT or --text-file FILE" in r.stderr


def _spoken(tmp_path, text: str, *args: str) -> tuple[set, set, np.ndarray]:
    """`melgand say TEXT ARGS`: the words pocketsphinx hears, the words said, the audio."""
    import soxr
    from pocketsphinx import Decoder

    out = tmp_path / "said.wav"
    r = say(text, *args, "-o", str(out))
    assert r.returncode == 0, r.stderr
    y, sr = sf.read(out, dtype="float32")
    y16 = (np.clip(soxr.resample(y, sr, 16000), -1, 1) * 32767).astype(np.int16)
    dec = Decoder(samprate=16000, loglevel="FATAL")
    dec.start_utt()
    dec.process_raw(y16.tobytes(), full_utt=True)
    dec.end_utt()
    heard = set(dec.hyp().hypstr.split()) if dec.hyp() else set()
    return heard, {w.strip(".,").lower() for w in text.split()}, y


def test_the_packaged_voice_speaks_intelligibly(tmp_path):
    """A fresh clone's default voice (model/voices/default), heard by pocketsphinx."""
    heard, said, _ = _spoken(tmp_path, "Please turn off the lights in the kitchen.")
    assert len(heard & said) >= 0.6 * len(said), heard


def test_joe_is_a_packaged_voice_with_its_own_vocoder(tmp_path):
    """`--voice joe` speaks (pocketsphinx hears it) through joe's own harmonic vocoder; a
    name that is no voice and no file is refused by name."""
    from model import registry
    from model import voice as _voice

    assert list(_voice.packaged_voices())[:2] == ["default", "joe"]
    own = registry.VOICES / "joe" / "harmonic.safetensors"
    assert registry.packaged_path("harmonic", "joe") == own
    assert registry.packaged_path("neural", "joe") == registry.PACKAGED["neural"]  # the default's
    heard, said, y = _spoken(tmp_path, "The museum opens at ten in the morning.", "--voice", "joe")
    assert len(heard & said) >= 0.5 * len(said), heard
    f0, voiced = dsp.yin(y, dsp.DEFAULT, fmin=60, fmax=400)
    assert np.median(f0[voiced]) < 160  # a male voice (the default speaks about 190 Hz)
    r = say("Hi.", "--voice", "nobody", "-o", str(tmp_path / "x.wav"))
    assert r.returncode == 2 and "--voice: voice nobody: neither a packaged voice" in r.stderr


def test_a_voices_voicing_rule_is_read_from_its_header_and_a_bad_one_refused(tmp_path):
    """joe is packaged with the "phones" voicing rule (the default voice with the head's);
    a checkpoint naming a rule there is not is refused at load with how to fix it."""
    from model import checkpoint
    from model import voice as _voice

    assert _voice.packaged(name="joe").voicing == "phones"
    assert _voice.packaged().voicing == "head"
    bad = tmp_path / "bad.safetensors"
    subprocess.run([sys.executable, "-m", "trainer.package", "acoustic",
                    "model/voices/default/acoustic.safetensors", str(bad),
                    "--set", 'voicing="always"'], check=True)  # fmt: skip
    with pytest.raises(checkpoint.CheckpointError, match="voicing 'always' is not one of"):
        _voice.Voice.load(bad)


def test_a_singing_model_beside_a_voice_loads_half_sized_and_is_checked(tmp_path):
    """`trainer.package --half` stores float16 weights (about half the file) that load as
    float32, the voice's output moved only by the rounding; a voice folder's
    singing.safetensors becomes ``voice.singer``; one with another phone set is refused."""
    import json

    from model import checkpoint
    from model import voice as _voice

    src, d = "model/voices/default/acoustic.safetensors", tmp_path / "v"
    pkg = [sys.executable, "-m", "trainer.package", "acoustic", src]
    subprocess.run([*pkg, str(d / "acoustic.safetensors")], check=True)
    subprocess.run([*pkg, str(d / "singing.safetensors"), "--half"], check=True)
    full, half = (d / "acoustic.safetensors").stat().st_size, (d / _voice.SINGING).stat().st_size
    assert half < 0.55 * full
    v = _voice.Voice.load(d / "acoustic.safetensors")
    assert v.singer is not None and v.singer.header["stored_dtype"] == "float16"
    floats = {a.dtype for a in v.singer.tensors.values() if a.dtype.kind == "f"}
    assert floats == {np.dtype(np.float32)}
    a, b = v.mel("Good morning."), v.singer.mel("Good morning.")
    assert a.shape == b.shape and 0 < np.abs(a - b).mean() < 0.005  # rounding, no more
    assert _voice.Voice.load(src).singer is not None  # the packaged default has one
    assert _voice.packaged(name="joe").singer is None
    other = json.dumps({"mode": "char", "symbols": list("abcdefgh")})  # letters, not phones
    subprocess.run([*pkg, str(d / "singing.safetensors"), "--set", f"frontend={other}"],
                   check=True)  # fmt: skip
    with pytest.raises(checkpoint.CheckpointError, match="phone set differs"):
        _voice.Voice.load(d / "acoustic.safetensors")
    assert _voice.Voice.load(d / "acoustic.safetensors", sings=False).singer is None


def test_a_voices_dir_voice_sings_with_its_own_singing_model_and_off_means_off(tmp_path):
    """In ``[daemon] voices_dir`` NAME.singing.safetensors is NAME's singing model, not a
    voice of its own; ``daemon.singing_model=false`` loads no singing model at all; ``--half``
    refuses weights float16 cannot hold."""
    import json

    import torch

    from daemon import config
    from daemon.serve import Daemon
    from model import checkpoint
    from model import voice as _voice

    src = "model/voices/default/acoustic.safetensors"
    pkg = [sys.executable, "-m", "trainer.package", "acoustic", src]
    subprocess.run([*pkg, str(tmp_path / "alto.safetensors")], check=True)
    subprocess.run([*pkg, str(tmp_path / "alto.singing.safetensors"), "--half"], check=True)
    sings = _voice.singing_path(tmp_path / "alto.safetensors")
    assert sings == tmp_path / "alto.singing.safetensors"
    where = config.parse_override(f"daemon.voices_dir={json.dumps(str(tmp_path))}")
    on = config.load(None, [where])
    off = config.load(None, [where, config.parse_override("daemon.singing_model=false")])
    d = Daemon(on, sink="null", osc="off", mqtt="off")
    assert "alto" in d.known_voices() and "alto.singing" not in d.known_voices()
    assert d._voice("alto").singer is not None
    assert Daemon(off, sink="null", osc="off", mqtt="off")._voice("alto").singer is None
    tensors, header = checkpoint.load(src, kind="acoustic")
    name = next(k for k, t in tensors.items() if t.is_floating_point())
    tensors[name] = tensors[name] * 1e6 + 1e5  # beyond 65504
    checkpoint.save(tmp_path / "big.safetensors", tensors, header)
    r = subprocess.run([sys.executable, "-m", "trainer.package", "acoustic",
                        str(tmp_path / "big.safetensors"), str(tmp_path / "x.safetensors"),
                        "--half"], capture_output=True, text=True)  # fmt: skip
    assert r.returncode != 0 and "exceed float16's range" in r.stderr
    assert not (tmp_path / "x.safetensors").exists() and torch.isfinite(tensors[name]).all()


def test_a_singing_model_beside_another_speech_model_is_logged(tmp_path, caplog):
    """The packaged singing model names the speech model it was packaged beside (its
    ``voice_sha256``); a folder where the speech model was replaced (joe's, same phone set)
    still loads, with a warning that says how to sing with the speech model instead."""
    import shutil

    from model import voice as _voice

    assert _voice.packaged().singer.header["voice_sha256"] == _voice.packaged().header["sha256"]
    shutil.copy(_voice.VOICES / "joe" / "acoustic.safetensors", tmp_path / "acoustic.safetensors")
    shutil.copy(_voice.VOICES / "default" / _voice.SINGING, tmp_path / _voice.SINGING)
    with caplog.at_level("WARNING", logger="melgand"):
        v = _voice.Voice.load(tmp_path / "acoustic.safetensors")
    assert v.singer is not None
    assert "packaged beside another speech model" in caplog.text
    assert "singing_model=false" in caplog.text
