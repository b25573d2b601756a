"""Typed configuration: the packaged ``config.toml`` with user files and flags layered over it.

Every key is declared here with its type and what is allowed; a file that names an unknown
section or key, gives a wrong type or an out-of-range value is refused with a
:class:`ConfigError` naming the file, the line, the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsp import Convention


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message says where and what to do."""

    user_error = True  # the CLI prints the message, without a traceback


def _opt(
    *, choices: tuple[Any, ...] | None = None, lo: float | None = None, hi: float | None = None
) -> Any:
    return field(metadata={"choices": choices, "lo": lo, "hi": hi})


@dataclass(frozen=True)
class DspVocoderConfig:
    method: str = _opt(choices=("rtisi", "griffin_lim"))
    griffin_lim_iters: int = _opt(lo=0, hi=1000)
    rtisi_lookahead: int = _opt(lo=0, hi=16)
    rtisi_iters: int = _opt(lo=0, hi=64)
    nnls_iters: int = _opt(lo=0, hi=1000)


@dataclass(frozen=True)
class _TrainConfig:
    """What every trainer takes; the sections below add their own keys."""

    steps: int = _opt(lo=1, hi=10_000_000)
    batch_size: int = _opt(lo=1, hi=1024)
    lr: float = _opt(lo=1e-6, hi=1.0)
    held_out: float = _opt(lo=0.0, hi=0.5)
    seed: int = _opt(lo=0, hi=2**31 - 1)


@dataclass(frozen=True)
class _TextTrainConfig(_TrainConfig):
    tokens: str = _opt(choices=("frontend", "segments", "chars"))


@dataclass(frozen=True)
class _LongTrainConfig(_TrainConfig):
    """The trainers that run for hours: schedule, checkpoints, device, several processes."""

    lr_step: int = _opt(lo=1, hi=10_000_000)
    lr_gamma: float = _opt(lo=0.01, hi=1.0)
    adversarial_weight: float = _opt(lo=0.0, hi=100.0)
    adversarial_start: int = _opt(lo=0, hi=10_000_000)
    save_every: int = _opt(lo=1, hi=10_000_000)
    device: str = _opt(choices=("auto", "cpu", "cuda"))
    amp: bool = _opt()


@dataclass(frozen=True)
class AlignerConfig(_TextTrainConfig):
    bin_loss_from: float = _opt(lo=0.0, hi=1.0)


@dataclass(frozen=True)
class AcousticConfig(_LongTrainConfig, _TextTrainConfig):
    hidden: int = _opt(lo=16, hi=4096)
    r: int = _opt(lo=1, hi=16)
    audio_encoder: int = _opt(lo=0, hi=1024)


@dataclass(frozen=True)
class VocoderConfig(_LongTrainConfig):
    arch: str = _opt(choices=("harmonic", "magnitude", "melgan"))
    blocks: int = _opt(lo=1, hi=64)
    rtisi_lookahead: int = _opt(lo=0, hi=16)
    rtisi_iters: int = _opt(lo=0, hi=64)
    mel_refine: int = _opt(lo=0, hi=256)
    voice_mix: bool = _opt()
    repitch_mix: float = _opt(lo=0.0, hi=1.0)
    harmonic_weight: float = _opt(lo=0.0, hi=100.0)
    phase_taps: int = _opt(lo=0, hi=512)
    bands: int = _opt(choices=(1, 2, 4, 8))
    channels: int = _opt(lo=8, hi=2048)
    ratios: tuple[int, ...] = _opt()
    lookahead: int = _opt(lo=0, hi=16)
    segment_frames: int = _opt(lo=4, hi=1024)
    context_frames: int = _opt(lo=0, hi=256)
    feature_match_weight: float = _opt(lo=0.0, hi=100.0)
    mel_weight: float = _opt(lo=0.0, hi=1000.0)
    disc_width: int = _opt(lo=1, hi=256)


@dataclass(frozen=True)
class DaemonConfig:
    greeting: str = _opt()
    sink: str = _opt()
    output_latency_ms: float = _opt(lo=0.0, hi=1000.0)
    fallback_sink: str = _opt()
    voice: str = _opt()
    voices_dir: str = _opt()
    max_text: int = _opt(lo=1, hi=100_000)
    max_queue: int = _opt(lo=1, hi=100_000)
    vocoder: str = _opt()
    render_vocoder: str = _opt()
    max_voices: int = _opt(lo=1, hi=64)
    latency_ms: float = _opt(lo=0.0, hi=2000.0)
    buffer_ms: float = _opt(lo=1.0, hi=1000.0)
    block: int = _opt(lo=16, hi=4096)
    chunk_frames: int = _opt(lo=1, hi=32)
    threads: int = _opt(lo=0, hi=256)
    vocoder_threads: int = _opt(lo=1, hi=64)
    device: str = _opt(choices=("auto", "cpu", "cuda"))
    native_range: tuple[int, ...] = _opt()
    singing_model: bool = _opt()


@dataclass(frozen=True)
class SingingConfig:
    """The sung expression's defaults (daemon/expression.py); ``/param/<name>`` changes them
    live, a score note's fields or ``/ne/<name>`` per note. 0 switches each off."""

    vibrato_depth: float = _opt(lo=0.0, hi=200.0)
    vibrato_rate: float = _opt(lo=0.0, hi=20.0)
    vibrato_delay: float = _opt(lo=0.0, hi=10.0)
    vibrato_fade: float = _opt(lo=0.0, hi=10.0)
    portamento: float = _opt(lo=0.0, hi=2.0)
    overshoot: float = _opt(lo=0.0, hi=2.0)
    preparation: float = _opt(lo=0.0, hi=2.0)
    fluctuation: float = _opt(lo=0.0, hi=50.0)
    breath: float = _opt(lo=0.0, hi=1.0)
    brightness: float = _opt(lo=-12.0, hi=12.0)
    velocity_brightness: float = _opt(lo=-24.0, hi=24.0)
    consonant: float = _opt(lo=-2.0, hi=2.0)
    hold: float = _opt(lo=0.0, hi=1.0)
    seed: int = _opt(lo=0, hi=2**31 - 1)

    def params(self) -> dict[str, float]:
        """As the scheduler's live parameters."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class OscConfig:
    host: str = _opt()
    port: int = _opt(lo=0, hi=65535)
    allow: tuple[str, ...] = _opt()
    max_rate: int = _opt(lo=1, hi=1_000_000)


@dataclass(frozen=True)
class MqttConfig:
    url: str = _opt()
    node: str = _opt()
    username: str = _opt()
    password: str = _opt()
    ca_file: str = _opt()
    pool: bool = _opt()
    keepalive: int = _opt(lo=5, hi=3600)
    stats_interval: float = _opt(lo=0.1, hi=3600.0)
    session_expiry: int = _opt(lo=0, hi=2**32 - 1)


@dataclass(frozen=True)
class WyomingConfig:
    uri: str = _opt()


@dataclass(frozen=True)
class OscQueryConfig:
    port: int = _opt(lo=0, hi=65535)


@dataclass(frozen=True)
class LogConfig:
    level: str = _opt(choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class Config:
    audio: Convention
    dsp_vocoder: DspVocoderConfig
    aligner: AlignerConfig
    acoustic: AcousticConfig
    vocoder: VocoderConfig
    daemon: DaemonConfig
    singing: SingingConfig
    osc: OscConfig
    mqtt: MqttConfig
    wyoming: WyomingConfig
    oscquery: OscQueryConfig
    log: LogConfig

    def vocoder_name(self, name: str | None = None, live: bool = False) -> str:
        """``name``, else ``[daemon] vocoder`` live or ``render_vocoder`` for the renders,
        else ``[dsp_vocoder] method``: what :func:`model.registry.load` is asked for."""
        d = self.daemon
        return name or (d.vocoder if live else d.render_vocoder) or self.dsp_vocoder.method

    def dsp_settings(self) -> dict:
        """The DSP vocoder's keyword arguments, for :func:`model.registry.load`."""
        return dataclasses.asdict(self.dsp_vocoder)


def packaged_path() -> Path:
    """The packaged defaults: beside the source tree, or where pip installed the data file."""
    for p in (
        Path(__file__).resolve().parent.parent / "config.toml",
        Path(sys.prefix) / "share" / "melgand" / "config.toml",
    ):
        if p.is_file():
            return p
    raise ConfigError("the packaged config.toml is missing: reinstall melgand (pip install -e .)")


def _line_of(text: str, section: str, key: str | None) -> int | None:
    current = None
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        m = re.match(r"^\[([^\]]+)\]", s)
        if m:
            current = m.group(1).strip()
            if key is None and current == section:
                return n
        elif key is not None and current == section and re.match(rf"^{re.escape(key)}\s*=", s):
            return n
    return None


def _where(source: str, text: str | None, section: str, key: str | None = None) -> str:
    line = _line_of(text, section, key) if text else None
    name = f"[{section}]" + (f" {key}" if key else "")
    return f"{source}" + (f", line {line}" if line else "") + f": {name}"


def _check_value(cls: type, f: dataclasses.Field, value: Any) -> str | None:
    """Why ``value`` is not allowed for field ``f`` (None when it is)."""
    want = typing.get_type_hints(cls)[f.name]
    if typing.get_origin(want) is tuple:  # tuple[int, ...] or tuple[str, ...]: a TOML array
        if typing.get_args(want)[0] is str:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return f"expected an array of strings, got {value!r}"
            return None
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        ):
            return f"expected an array of positive integers, got {value!r}"
        return None
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, want) or (want is int and isinstance(value, bool)):
        return f"expected {want.__name__}, got {type(value).__name__} {value!r}"
    meta = f.metadata
    if meta.get("choices") and value not in meta["choices"]:
        return f"got {value!r}; select one of {list(meta['choices'])}"
    lo, hi = meta.get("lo"), meta.get("hi")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return f"got {value!r}; allowed {lo}..{hi}"
    return None


def _merge(
    base: dict[str, dict[str, Any]], layer: dict[str, Any], source: str, text: str | None
) -> None:
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    hints = typing.get_type_hints(Config)
    for section, values in layer.items():
        if section not in sections:
            raise ConfigError(
                f"{_where(source, text, section)}: unknown section; known: {sorted(sections)}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: {section} must be a [section] table")
        cls = hints[section]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(
                    f"{_where(source, text, section, key)}: unknown key; "
                    f"[{section}] has {sorted(fields)}"
                )
            why = _check_value(cls, fields[key], value)
            if why:
                raise ConfigError(f"{_where(source, text, section, key)}: {why}")
            want = typing.get_type_hints(cls)[key]
            if want is float:
                value = float(value)
            elif typing.get_origin(want) is tuple:
                value = tuple(value)
            base.setdefault(section, {})[key] = value


def parse_override(spec: str) -> tuple[str, str, Any]:
    """``section.key=value`` (value in TOML syntax; bare words are strings)."""
    m = re.fullmatch(r"\s*([A-Za-z_]\w*)\.([A-Za-z_]\w*)\s*=(.*)", spec)
    if not m:
        raise ConfigError(f"--set {spec!r}: expected section.key=value, e.g. log.level=debug")
    section, key, raw = m.group(1), m.group(2), m.group(3).strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return section, key, value


def load(
    files: list[Path | str] | None = None, overrides: list[tuple[str, str, Any]] | None = None
) -> Config:
    """Packaged defaults, then each file in order, then ``overrides`` (from flags)."""
    merged: dict[str, dict[str, Any]] = {}
    for i, path in enumerate([packaged_path(), *(files or [])]):
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text)
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read config file ({e})") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
        _merge(merged, data, str(path), text)
        if i == 0:
            packaged = path
    for section, key, value in overrides or []:
        _merge(merged, {section: {key: value}}, "command line", None)
    kwargs = {}
    for f in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[f.name]
        values = merged.get(f.name, {})
        try:
            kwargs[f.name] = cls(**values)
        except TypeError as e:
            raise ConfigError(f"{packaged}: [{f.name}] is incomplete ({e})") from None
        except ValueError as e:
            raise ConfigError(f"[{f.name}]: {e}") from None
    return Config(**kwargs)
