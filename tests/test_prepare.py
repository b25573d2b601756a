"""`melgand prepare`: dataset checks by id, and the versioned feature cache."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import dsp
from trainer import features

MELGAND = str(Path(sys.executable).parent / "melgand")


@pytest.fixture
def damaged(tiny_corpus, tmp_path) -> Path:
    """The tiny corpus with one of each kind of problem."""
    d = tmp_path / "ds"
    shutil.copytree(tiny_corpus, d)
    (d / "wavs" / "s3_0002.wav").write_bytes(b"RIFF\x00\x00garbage")  # corrupt
    (d / "wavs" / "s3_0003.wav").unlink()  # missing
    y, _ = sf.read(d / "wavs" / "s3_0004.wav", dtype="float32")
    sf.write(d / "wavs" / "s3_0004.wav", np.stack([y, y], 1), 22050)  # stereo
    sf.write(d / "wavs" / "s3_0006.wav", np.zeros(0), 22050)  # empty
    sf.write(d / "wavs" / "s3_0007.wav", np.clip(y * 50, -1, 1), 22050)  # clipped
    y8, _ = sf.read(tiny_corpus / "wavs" / "s3_0008.wav", dtype="float32")
    sf.write(d / "wavs" / "s3_0008.wav", y8, 16000, subtype="PCM_16")  # says 16 kHz: resampled
    rows = (d / "metadata.csv").read_text().splitlines()
    rows[4] = "s3_0005||"  # empty text
    rows.append(rows[0])  # duplicate id
    rows.append("no separator here")
    (d / "metadata.csv").write_text("\n".join(rows) + "\n")
    return d


def test_prepare_names_every_bad_row(damaged):
    r = subprocess.run([MELGAND, "prepare", str(damaged)], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr  # something was skipped
    out = r.stdout
    assert "skipped s3_0002: unreadable audio" in out
    assert "skipped s3_0003: wav missing (wavs/s3_0003.wav)" in out
    assert "skipped s3_0005: line 5: empty text" in out
    assert "skipped s3_0006: empty audio" in out
    assert "skipped s3_0001 (line 13): duplicate id (first at line 1)" in out
    assert "skipped line 14: metadata.csv, line 14: expected id|text|normalized text" in out
    assert "note s3_0004: 2 channels, downmixed" in out
    assert "note s3_0007: clipped" in out
    assert "note s3_0008: 16000 Hz, resampled to 22050" in out
    assert "14 rows, 8 ready, 6 skipped" in out


def test_clean_dataset_exits_zero_and_cache_is_reused(tiny_corpus, tmp_path):
    d = tmp_path / "ds"
    shutil.copytree(tiny_corpus, d, ignore=shutil.ignore_patterns(".melgand"))
    r = subprocess.run([MELGAND, "prepare", str(d)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "12 ready, 0 skipped" in r.stdout and "(12 built, 0 reused)" in r.stdout
    r = subprocess.run([MELGAND, "prepare", str(d)], capture_output=True, text=True)
    assert "(0 built, 12 reused)" in r.stdout


def test_cache_holds_the_features_and_follows_the_convention(tiny_corpus, tmp_path):
    d = tmp_path / "ds"
    shutil.copytree(tiny_corpus, d, ignore=shutil.ignore_patterns(".melgand"))
    p = features.prepare(d, dsp.DEFAULT, progress=False)
    f = features.load(p.cache, "s3_0001")
    y, _ = sf.read(d / "wavs" / "s3_0001.wav", dtype="float32")
    np.testing.assert_allclose(f["mel"], dsp.log_mel(y), atol=1e-5)
    n = f["mel"].shape[1]
    assert f["f0"].shape == f["voiced"].shape == f["energy"].shape == (n,)
    voiced_f0 = f["f0"][f["voiced"]]
    assert 0.3 < f["voiced"].mean() < 0.95 and 140 < np.median(voiced_f0) < 230  # slt's range
    other = dsp.Convention(fmax=7600.0)
    p2 = features.prepare(d, other, progress=False)
    assert p2.cache != p.cache and p2.built == 12 and not p.cache.exists()  # rebuilt, stale gone
    (p2.cache / "s3_0002.npz").write_bytes(b"broken")
    with pytest.raises(ValueError, match=r"s3_0002.npz: broken feature file"):
        features.load(p2.cache, "s3_0002")


def test_no_metadata_is_a_clear_error(tmp_path):
    r = subprocess.run([MELGAND, "prepare", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "metadata.csv not found" in r.stderr
