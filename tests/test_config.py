"""Typed configuration: the packaged file, layering, and refusals that name file, line, key."""

from __future__ import annotations

import dataclasses
import tomllib

import pytest

import dsp
from daemon import config
from daemon.config import ConfigError


def write(tmp_path, text: str):
    p = tmp_path / "user.toml"
    p.write_text(text)
    return p


def test_packaged_defaults_load_and_set_every_key():
    cfg = config.load()
    assert cfg.audio == dsp.DEFAULT  # the packaged convention is the design's
    packaged = tomllib.loads(config.packaged_path().read_text())
    for f in dataclasses.fields(cfg):
        section = getattr(cfg, f.name)
        keys = {x.name for x in dataclasses.fields(section)}
        assert set(packaged[f.name]) == keys, f"config.toml [{f.name}] must set every key"


def test_every_packaged_key_is_commented():
    lines = config.packaged_path().read_text().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            assert "#" in line or lines[i - 1].lstrip().startswith("#"), line


def test_a_file_sets_only_what_it_changes(tmp_path):
    cfg = config.load([write(tmp_path, "[dsp_vocoder]\nrtisi_iters = 7\n")])
    assert cfg.dsp_vocoder.rtisi_iters == 7
    assert cfg.dsp_vocoder.method == "rtisi" and cfg.audio == dsp.DEFAULT


def test_flags_override_files(tmp_path):
    user = write(tmp_path, '[log]\nlevel = "debug"\n[audio]\nfmax = 7600\n')
    cfg = config.load([user], [config.parse_override("log.level=warning")])
    assert cfg.log.level == "warning"
    assert cfg.audio.fmax == 7600.0 and isinstance(cfg.audio.fmax, float)  # int accepted


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[dsp_vocoder]\nmethod = "rtisi"\nspeed = 3\n',
            r"user.toml, line 3: \[dsp_vocoder\] speed: unknown key; \[dsp_vocoder\] has \[",
        ),
        ("[vocoderz]\nx = 1\n", r"line 1: \[vocoderz\]: unknown section; known: \["),
        (
            '[dsp_vocoder]\nrtisi_iters = "four"\n',
            r"line 2: \[dsp_vocoder\] rtisi_iters: expected int, got str 'four'",
        ),
        ("[dsp_vocoder]\nrtisi_iters = true\n", "expected int, got bool"),
        ("[dsp_vocoder]\nrtisi_iters = 1.5\n", "expected int, got float"),
        (
            "[dsp_vocoder]\n\n rtisi_lookahead = 99\n",
            r"line 3: \[dsp_vocoder\] rtisi_lookahead: got 99; allowed 0..16",
        ),
        ('[log]\nlevel = "loud"\n', r"select one of \['debug', 'info', 'warning', 'error'\]"),
        ("[audio]\nhop_length = 4096\n", r"\[audio\]: invalid audio convention: hop_length"),
        ("[audio\nhop_length = 4096\n", "not valid TOML"),
        ("audio = 3\n", "must be a"),
    ],
)
def test_bad_files_are_refused_with_file_line_key_and_what_is_allowed(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        config.load([write(tmp_path, text)])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.toml: config file not found"):
        config.load([tmp_path / "nope.toml"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("log.level", "expected section.key=value"),
        ("log.level=shout", "select one of"),
        ("dsp_vocoder.rtisi_iters=-1", r"command line: \[dsp_vocoder\] rtisi_iters: got -1"),
    ],
)
def test_bad_overrides_are_refused(spec, message):
    with pytest.raises(ConfigError, match=message):
        config.load(None, [config.parse_override(spec)])


def test_override_values_parse_as_toml():
    assert config.parse_override("audio.fmax=7600.5") == ("audio", "fmax", 7600.5)
    assert config.parse_override("log.level=debug") == ("log", "level", "debug")
    assert config.parse_override("log.level = 'info'") == ("log", "level", "info")
