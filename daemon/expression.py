"""Sung expression: how a note's pitch moves (pure maths, no torch; :class:`daemon.synth.Note`
runs it a frame at a time).

Everything here is causal, so that a live note, whose length nobody knows at note-on, is
sung the same way as a score's: a frame's pitch depends only on what came before it.

- **Vibrato**: a sine of ``vibrato_depth`` cents (half peak-to-peak) at ``vibrato_rate`` Hz,
  from ``vibrato_delay`` seconds after the vowel's onset (live notes; a score note's delay is a
  quarter of the note, and a score note of 0.5 s or less has none unless it asks), fading in
  over ``vibrato_fade`` seconds. A legato move starts the delay again (the vibrato dips out
  over 0.1 s during the transition and comes back).
- **Portamento**: a legato move (live legato, a score's next note or melisma) glides the
  pitch control over ``portamento`` seconds (raised-cosine); in a score phrase a new
  syllable's move takes its onset consonants at most (:class:`daemon.synth.Phrase`).
- **Overshoot and preparation** (Saitou et al. 2007): the control passes through a damped
  second-order system (``w = 34.8 rad/s``, ``zeta = 0.54``, their overshoot model), so that
  the pitch lags the move and overshoots the new note before settling; ``overshoot`` (0..1+)
  blends it in. ``preparation`` adds a causal stand-in for their preparation (which they made
  anticausal): a zero in the right half-plane, ``y - preparation * tau * dy/dt``, which first
  moves the pitch against the change, as singers do before a jump.
- **Fine fluctuation**: ``fluctuation`` cents rms of low-pass filtered Gaussian noise
  (two one-pole filters at ~8 Hz), from a seed: a render is the same every time.
- **Velocity**: loudness (the note's gain, in the synth) and brightness: ``brightness`` dB
  per octave of spectral tilt, plus ``velocity_brightness`` dB/octave times
  ``(velocity - 100) / 127`` (a harder note is brighter); :func:`tilt` applies a tilt to a
  natural-log mel. The note carries it per frame as ``note.brightness``.
- **Breathiness**: ``breath`` 0..1, carried per frame as ``note.breath`` for the vocoder's
  noise gain (0: the vocoder's own; 1: all breath).
- **Consonant length** (OpenUtau's consonant velocity): ``consonant`` octaves of length of
  the onset consonants against the voice's spoken ones (+1: twice as long, -1: half; 0: as
  spoken), set as the note starts. They are sung before the beat (``note.lead``), so the
  vowel still lands on it.

A zero switches each part off; :meth:`Expression.off` is a plain note (its f0 exactly the
note's pitch). Settings come, each overriding the one before, from the defaults here, the
config's ``[singing]`` section, the live ``/param/<name>`` (MQTT ``control`` ``param``), and
per note: a score note's JSON field or ``/ne/<name> id value``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from functools import lru_cache

import numpy as np

# the overshoot model's second-order system (Saitou et al. 2007, Table 1: 0.0348 rad/ms)
OMEGA, ZETA = 34.8, 0.5422
PREP_TAU = 0.03  # s: the time constant of the preparation's zero
FLUCT_HZ = 8.0  # the fine fluctuation's low-pass cutoff
VIB_RELEASE = 0.1  # s: the vibrato dips out this fast at a legato move
SCORE_MIN_VIBRATO = 0.5  # s: shorter score notes get no vibrato unless they ask for it
REF_VELOCITY = 100.0  # the velocity at which velocity changes no brightness
REF_HZ = 1000.0  # the tilt's pivot


@dataclass(frozen=True)
class Expression:
    """One note's expression settings (units: cents, Hz, seconds, dB/octave; 0 = off)."""

    vibrato_depth: float = 35.0  # cents, half peak-to-peak
    vibrato_rate: float = 5.7  # Hz
    vibrato_delay: float = 0.25  # s after the vowel's onset (or a legato move)
    vibrato_fade: float = 0.3  # s to fade in
    portamento: float = 0.08  # s, the glide of a legato move
    overshoot: float = 1.0  # blend of the second-order response (1: Saitou's model)
    preparation: float = 0.7  # strength of the move against the change before it
    fluctuation: float = 4.0  # cents rms of fine fluctuation
    breath: float = 0.0  # 0..1, for the vocoder's noise gain
    brightness: float = 0.0  # dB/octave of spectral tilt (around 1 kHz)
    velocity_brightness: float = 4.0  # dB/octave more at velocity 127 than at 100 (x 27/127)
    consonant: float = 0.0  # octaves of onset-consonant length (+1: twice as spoken; 0: as is)
    hold: float = 0.0  # 0..1: a held vowel's spectrum kept from its first held frame (1: all)

    @classmethod
    def off(cls) -> Expression:
        return cls(**{f.name: 0.0 for f in fields(cls)})

    @classmethod
    def of(cls, *layers: dict | None) -> Expression:
        """Defaults, then each dict's known keys in order (later ones win; None: skipped)."""
        known = {f.name for f in fields(cls)}
        kw: dict[str, float] = {}
        for layer in layers:
            for k, v in (layer or {}).items():
                if k in known and v is not None:
                    kw[k] = float(v)
        return replace(cls(), **kw) if kw else cls()

    def tilt_db(self, velocity: float) -> float:
        """The note's spectral tilt, dB/octave, for its velocity."""
        return self.brightness + self.velocity_brightness * (velocity - REF_VELOCITY) / 127.0


NAMES = tuple(f.name for f in fields(Expression))
DEFAULTS = {f.name: float(f.default) for f in fields(Expression)}
# what OSC, MQTT and score notes accept (the config's [singing] declares the same ranges)
RANGES = {"vibrato_depth": (0.0, 200.0), "vibrato_rate": (0.0, 20.0),
          "vibrato_delay": (0.0, 10.0), "vibrato_fade": (0.0, 10.0), "portamento": (0.0, 2.0),
          "overshoot": (0.0, 2.0), "preparation": (0.0, 2.0), "fluctuation": (0.0, 50.0),
          "breath": (0.0, 1.0), "brightness": (-12.0, 12.0),
          "velocity_brightness": (-24.0, 24.0), "consonant": (-2.0, 2.0),
          "hold": (0.0, 1.0)}  # fmt: skip
HELP = {"vibrato_depth": "vibrato depth, cents (half peak-to-peak; 0 = off)",
        "vibrato_rate": "vibrato rate, Hz (0 = off)",
        "vibrato_delay": "seconds from the vowel's onset to the vibrato",
        "vibrato_fade": "seconds the vibrato takes to fade in",
        "portamento": "glide time of legato notes, seconds (0 = a jump)",
        "overshoot": "overshoot after a pitch change, 0..2 (1 = Saitou's model; 0 = off)",
        "preparation": "move against a pitch change before it, 0..2 (0 = off)",
        "fluctuation": "fine pitch fluctuation, cents rms (0 = off)",
        "breath": "breathiness 0..1 (the vocoder's noise gain)",
        "brightness": "spectral tilt, dB/octave around 1 kHz (0 = as the voice)",
        "velocity_brightness": "dB/octave brighter (x (velocity - 100) / 127)",
        "consonant": "onset consonants' length, octaves (1 = twice; 0 = as spoken)",
        "hold": "held vowel's spectrum kept from its start, 0..1 (0 = generated)"}  # fmt: skip


def for_score_note(note: dict) -> dict[str, float]:
    """A score note's own settings: its expression fields, and its vibrato delay a quarter of
    its length (the length is known); a note of 0.5 s or less has no vibrato unless it asks."""
    own = {k: float(note[k]) for k in NAMES if note.get(k) is not None}
    dur = float(note.get("dur", 0.0))
    if dur > 0:
        own.setdefault("vibrato_delay", 0.25 * dur)
        if dur <= SCORE_MIN_VIBRATO:
            own.setdefault("vibrato_depth", 0.0)
    return own


def tilt(log_mel: np.ndarray, db_per_octave: float, centres_hz: np.ndarray) -> np.ndarray:
    """A natural-log mel ``(n_mels, T)`` tilted by ``db_per_octave`` around 1 kHz (0: as is)."""
    if not db_per_octave:
        return log_mel
    octaves = np.log2(np.maximum(np.asarray(centres_hz, np.float64), 20.0) / REF_HZ)
    gain = db_per_octave * octaves * (math.log(10.0) / 20.0)  # dB of amplitude -> ln
    return log_mel + gain.astype(log_mel.dtype)[:, None]


@lru_cache(maxsize=64)
def _lowpass(frame_s: float) -> tuple[float, float]:
    """The fluctuation filter's pole and the gain that makes its output unit-variance."""
    a = math.exp(-2 * math.pi * FLUCT_HZ * frame_s)
    # z1 = a z1 + sqrt(1 - a^2) w (unit variance), z2 = a z2 + (1 - a) z1
    var = (1 - a) ** 2 * (1 + a * a) / (1 - a * a) ** 2
    return a, 1.0 / math.sqrt(var)


class Contour:
    """A note's pitch, frame by frame: ``step`` gives the next frame's MIDI pitch (float).

    ``glide(pitch, seconds)`` is a legato move (portamento, overshoot, preparation, and the
    vibrato's delay again); ``onset(frame)`` sets the frame the vibrato counts from."""

    def __init__(self, pitch: float, frame_s: float, seed: int = 0, onset: int = 0):
        self.dt, self.frame = frame_s, 0
        self.start = self.target = float(pitch)  # the move: from, to
        self.move: tuple[int, int] | None = None  # (first frame, frames)
        self.y, self.v = float(pitch), 0.0  # the second-order system's state
        self.onset_frame = onset
        self.phase = self.env = 0.0
        self.rng = np.random.default_rng(seed)
        a, _ = _lowpass(frame_s)
        self.z1 = float(self.rng.standard_normal())
        self.z2 = 0.0
        for _ in range(int(4 / (1 - a))):  # warm the filter up: stationary from frame 0
            self._noise()

    @property
    def control(self) -> float:
        """The pitch control (before the second-order system) at this frame."""
        if self.move is None:
            return self.target
        first, n = self.move
        p = min(1.0, max(0.0, (self.frame - first) / n))
        return self.start + (self.target - self.start) * (0.5 - 0.5 * math.cos(math.pi * p))

    def glide(self, pitch: float, seconds: float) -> None:
        self.start, self.target = self.control, float(pitch)
        n = round(seconds / self.dt)
        self.move = (self.frame, n) if n >= 1 else None
        self.onset_frame = self.frame

    def _noise(self) -> float:
        a, g = _lowpass(self.dt)
        self.z1 = a * self.z1 + math.sqrt(1 - a * a) * float(self.rng.standard_normal())
        self.z2 = a * self.z2 + (1 - a) * self.z1
        return g * self.z2

    def step(self, e: Expression) -> float:
        """This frame's pitch (MIDI) under the settings ``e``; then on to the next frame."""
        x = self.control
        if self.move is not None and self.frame - self.move[0] >= self.move[1]:
            self.move = None
        sub = 4  # semi-implicit Euler, 4 steps a frame (w dt = 0.1): accurate and stable
        h = self.dt / sub
        for _ in range(sub):
            self.v += h * (OMEGA * OMEGA * (x - self.y) - 2 * ZETA * OMEGA * self.v)
            self.y += h * self.v
        midi = x
        if e.overshoot:
            midi += e.overshoot * (self.y - x)
        if e.preparation:
            midi -= e.preparation * PREP_TAU * self.v
        # vibrato: the phase runs on (a rate change stays smooth); the envelope rises from
        # the delay over the fade, and dips out quickly when a move starts the delay again
        since = (self.frame - self.onset_frame) * self.dt
        self.phase = (self.phase + 2 * math.pi * e.vibrato_rate * self.dt) % (2 * math.pi)
        want = since >= e.vibrato_delay
        if e.vibrato_fade > 0:
            want = min(1.0, max(0.0, (since - e.vibrato_delay) / e.vibrato_fade))
        want = float(want)
        self.env = want if want >= self.env else max(want, self.env - self.dt / VIB_RELEASE)
        if e.vibrato_depth and e.vibrato_rate and self.env:
            midi += e.vibrato_depth / 100.0 * self.env * math.sin(self.phase)
        n = self._noise()  # drawn every frame: the noise does not depend on the settings
        if e.fluctuation:
            midi += e.fluctuation / 100.0 * n
        self.frame += 1
        return midi


def contour(pitch: float, frames: int, e: Expression, frame_s: float, seed: int = 0,
            moves: dict[int, tuple[float, float]] | None = None,
            onset: int = 0) -> np.ndarray:  # fmt: skip
    """The pitch (MIDI, ``(frames,)``) of a note at ``pitch`` under ``e``, its vowel from frame
    ``onset``; ``moves`` maps frames to legato moves ``(pitch, seconds)`` made there (as
    :meth:`Contour.glide`). What a :class:`daemon.synth.Note` sings, frame by frame."""
    c = Contour(pitch, frame_s, seed, onset)
    out = np.empty(frames)
    for k in range(frames):
        if moves and k in moves:
            c.glide(*moves[k])
        out[k] = c.step(e)
    return out


def score_seed(seed: int, *parts: float) -> int:
    """A note's fluctuation seed from a base seed and what tells notes apart (reproducible)."""
    words = [int(seed), *(round(p * 100) % 2**32 for p in parts)]
    return int(np.random.SeedSequence(words).generate_state(1)[0])
