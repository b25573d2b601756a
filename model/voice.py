"""A voice: a trained acoustic model with its frontend and statistics, text -> mel.

``Voice.load(path)`` reads an acoustic checkpoint (safetensors + JSON header) and refuses a
convention other than the caller's; its model runs on the CPU without torch
(:class:`model.acoustic_cpu.CpuAcoustic`) or, on a GPU or with audio feedback, as the torch
module (:class:`model.acoustic.TorchAcoustic`), behind one numpy interface. The voice owns
inference, offline and streaming alike:
``speech(text)`` / ``syllable(lyric)`` predict durations and per-token prosody and give the
generator's inputs, :meth:`Voice.inputs` projects edited controls (a sung note's pitch),
:meth:`Voice.outputs` turns generator frames into log-mel and Hz; in between the generator
runs offline (``voice.mel(text)``) or streams (``voice.model.stream``, its states batched by
``voice.model.join``). ``packaged()`` is the default voice in
``model/voices/default/``.

A voice may have a singing model beside it (:func:`singing_path`: ``singing.safetensors``
next to an ``acoustic.safetensors``, ``NAME.singing.safetensors`` next to a ``NAME.safetensors``),
the same voice fine-tuned for singing (same frontend and convention), loaded as
``voice.singer``; the daemon's sung notes and scores use it (``[daemon] singing_model``),
speech keeps the acoustic model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np

import dsp
from model import checkpoint, retiming
from model.acoustic_cpu import CpuAcoustic, supports
from model.frontend import Frontend, lyric_phones
from model.g2p import is_vowel
from model.registry import VOICES
from model.stats import Stats

PACKAGED = VOICES / "default" / "acoustic.safetensors"  # NAME's: VOICES / NAME / acoustic...
SINGING = "singing.safetensors"  # a voice's singing model, beside its acoustic.safetensors
log = logging.getLogger("melgand")


def singing_path(path: Path | str) -> Path:
    """Where the singing model of the voice in ``path`` lies: ``singing.safetensors`` beside
    an ``acoustic.safetensors`` (a packaged voice's folder), ``NAME.singing.safetensors``
    beside a ``NAME.safetensors`` (a ``[daemon] voices_dir`` voice)."""
    path = Path(path)
    if path.name == PACKAGED.name:
        return path.with_name(SINGING)
    return path.with_name(f"{path.stem}.{SINGING}")


def phones_of(lyric: str | tuple[str, ...]) -> list[str]:
    """A syllable's phones: given, or read from its text (``la`` for none)."""
    phones = list(lyric) if isinstance(lyric, tuple) else [
        p for syl in lyric_phones([lyric]) for p in syl]  # fmt: skip
    return phones or ["l", "aa"]


class Syllable(NamedTuple):
    """A sung syllable's generator material (see :meth:`Voice.syllable`)."""

    up: np.ndarray  # (T, C + 1) upsampled encoding
    controls: np.ndarray  # (T, 3) normalized per-frame controls, the vowel voiced
    onset: int  # the vowel's first frame (before it: the onset, sung ahead of the beat)
    hold: int  # the vowel's middle frame, which a held note repeats
    coda: int  # the frame after the vowel (the coda, sung at note-off)


class SungPhrase(NamedTuple):
    """A sung phrase's generator material (see :meth:`Voice.sung`)."""

    up: np.ndarray  # (T, C + 1) upsampled encoding, the phones re-timed onto the notes
    controls: np.ndarray  # (T, 3) normalized per-frame controls, the vowels voiced
    lead: int  # the first note's beat (frames: a pause, then its onset consonants)
    changes: list[int]  # each note's pitch-change frame (a syllable's at its onset)
    beats: list[int]  # each note's beat (frames; a syllable's vowel starts there)
    ends: list[int]  # each syllable's vowel end (frames; its coda starts there)


def upsample(enc: np.ndarray, durations: np.ndarray, n_frames: int) -> np.ndarray:
    """:func:`model.acoustic.upsample` of one item: each token's encoding ``(N, C)`` repeated
    for its frames, its position in the token appended -> ``(T, C + 1)`` float32."""
    d = np.maximum(np.asarray(durations, np.int64), 0)
    idx = np.repeat(np.arange(len(d)), d)[:n_frames]
    starts = np.cumsum(d) - d
    pos = (np.arange(idx.size) - starts[idx]).astype(np.float32)
    out = np.zeros((n_frames, enc.shape[1] + 1), np.float32)
    out[: idx.size, :-1] = enc[idx]
    out[: idx.size, -1] = pos / np.maximum(d[idx], 1).astype(np.float32)
    return out


def _stretch(dur: np.ndarray, ctrl: np.ndarray, v: int, factor: float):
    """Durations ``(N,)`` with the first ``v`` times ``factor`` (whole frames, each at least
    one) and the per-frame controls ``(T, 3)`` repeated for the new durations."""
    new = dur.copy()
    new[:v] = np.maximum(np.round(dur[:v].astype(np.float64) * factor), 1).astype(np.int64)
    per_token = ctrl[np.cumsum(dur) - dur]  # each token's controls, at its first frame
    return new, np.repeat(per_token, new, axis=0)


def _engine(tensors: dict, kwargs: dict, device="cpu"):
    """The model's inference on ``device``: the CPU engine where it covers the model, else
    the torch module (a GPU, or audio feedback)."""
    if str(device).startswith("cpu") and supports(kwargs):
        return CpuAcoustic(tensors, kwargs)
    from model.acoustic import TorchAcoustic

    return TorchAcoustic.of(tensors, kwargs, device)


def _voiced(ctrl: np.ndarray, frames: slice) -> None:
    """A vowel's frames voiced and at least at average loudness (in place)."""
    ctrl[frames, 1] = 1.0
    ctrl[frames, 2] = np.maximum(ctrl[frames, 2], 0.0)


class Voice:
    def __init__(self, model, frontend: Frontend, stats: Stats, conv: dsp.Convention,
                 header: dict, tensors: dict | None = None):  # fmt: skip
        self.model = model  # CpuAcoustic or model.acoustic.TorchAcoustic
        self.frontend = frontend
        self.stats = stats
        self.conv = conv
        self.header = header
        self.tensors = tensors  # the weights (numpy), to move the model between engines
        self.singer: Voice | None = None  # the voice's singing model, where it has one

    @property
    def voicing(self) -> str:
        """How speech is voiced (:func:`voicing_allowed`): the header's ``voicing``, else
        "head"."""
        return self.header.get("voicing", "head")

    @property
    def device(self) -> str:
        return "cpu" if isinstance(self.model, CpuAcoustic) else str(self.model.device)

    def to(self, device) -> Voice:
        """On ``device``: the CPU engine on the CPU (where it covers the model), the torch
        module on a GPU."""
        kwargs = self.header["kwargs"]
        cpu = str(device).startswith("cpu") and supports(kwargs)
        if cpu != isinstance(self.model, CpuAcoustic):
            self.model = _engine(self.tensors, kwargs, device)
        elif not cpu:
            self.model.to(device)
        if self.singer is not None:
            self.singer.to(device)
        return self

    def module(self):
        """The voice's torch :class:`model.acoustic.AcousticModel` on the CPU, a copy of its
        weights (teacher forcing: the trainers' and benches' use)."""
        from model.acoustic import TorchAcoustic

        return TorchAcoustic.of(self.tensors, self.header["kwargs"], "cpu").model

    @classmethod
    def load(cls, path: Path | str, conv: dsp.Convention | None = None,
             sings: bool = True) -> Voice:  # fmt: skip
        """The voice in the acoustic checkpoint ``path``, with its singing model where one
        lies beside it (:func:`singing_path`) and ``sings`` is on."""
        v = cls._load(path, conv)
        other = singing_path(path)
        if sings and other.is_file():
            v.singer = cls._load(other, v.conv)
            if v.singer.frontend.to_dict() != v.frontend.to_dict():
                raise checkpoint.CheckpointError(
                    f"{other}: its phone set differs from {path}'s; a voice's singing model "
                    "is that voice fine-tuned: retrain it from the voice, move it away, or "
                    "sing with the voice itself (--set daemon.singing_model=false)"
                )
            beside = v.singer.header.get("voice_sha256")  # the speech model it was packaged with
            if beside is not None and beside != v.header.get("sha256"):
                log.warning("%s was packaged beside another speech model than %s; it sings "
                            "for it anyway (--set daemon.singing_model=false: the speech "
                            "model sings)", other, path)  # fmt: skip
        return v

    @classmethod
    def _load(cls, path: Path | str, conv: dsp.Convention | None = None) -> Voice:
        tensors, header = checkpoint.load(path, kind="acoustic", framework="np")
        have = checkpoint.convention(header, conv, path, "voice")
        fe, stats = Frontend.from_dict(header["frontend"]), Stats.from_dict(header["stats"])
        if header.get("voicing", "head") not in VOICING_RULES:
            raise checkpoint.CheckpointError(
                f"{path}: voicing {header['voicing']!r} is not one of {VOICING_RULES}; "
                "repackage it with python -m trainer.package --set voicing='\"head\"'"
            )
        return cls(_engine(tensors, header["kwargs"]), fe, stats, have, header, tensors)

    def _encode(self, tokens: list[int], speed: float = 1.0):
        """Token ids -> their encoding ``(N, C)``, predicted durations ``(N,)`` (frames,
        each >= 1) and per-token prosody ``(N, 3)`` (normalized controls)."""
        enc, log_dur, prosody = self.model.encode(tokens)
        dur = np.maximum(np.round((np.exp(log_dur) - 1) / np.float32(speed)), 1)
        return enc, dur.astype(np.int64), prosody

    def _predict(self, tokens: list[int], keep: slice = slice(None), speed: float = 1.0):
        """Token ids -> the encoding ``(N, C)`` of those in ``keep`` (the rest are context
        the encoder sees), their predicted durations ``(N,)`` (frames, each >= 1) and their
        per-token prosody repeated for those frames ``(T, 3)`` (normalized controls)."""
        enc, dur, prosody = self._encode(tokens, speed)
        dur = dur[keep]
        return enc[keep], dur, np.repeat(prosody[keep], dur, axis=0)

    def frame_inputs(self, text: str, speed: float = 1.0) -> np.ndarray:
        """The generator's inputs ``(T, D)`` for ``text``: predicted durations and per-token
        prosody, upsampled to frames."""
        return self.speech(text, speed)[0]

    def speech(self, text: str, speed: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Generator inputs ``(T, D)`` for ``text`` and the f0 ``(T,)`` (Hz, 0 = unvoiced)
        of their pitch controls."""
        enc, dur, controls = self._predict(self.frontend.encode(text), speed=speed)
        hz = self.stats.hz(controls[:, 0])
        f0 = np.where(controls[:, 1] > 0.5, hz, 0.0).astype(np.float64)
        return self.inputs(upsample(enc, dur, len(controls)), controls), f0

    def syllable(self, lyric: str | tuple[str, ...], before: tuple[str, ...] = (),
                 after: tuple[str, ...] = (), *, consonant: float = 1.0) -> Syllable:  # fmt: skip
        """A syllable (text, or its phones) to sing: its upsampled encoding, per-frame controls
        with the vowel voiced (and at least at average loudness), and the vowel's frames.

        ``before`` / ``after``: the phones of the neighbouring syllables of its phrase
        (:func:`phrase`), encoded with it (co-articulation: the text encoder sees them) and
        then left out. ``consonant``: the length of its phones before the vowel, times the
        length the voice speaks them (whole frames, each at least one; 1: as spoken)."""
        phones = phones_of(lyric)
        # a bare vowel is encoded between pauses (as in every training sentence), else the
        # model all but whispers it; a phrase starts and ends with a pause
        bare = all(is_vowel(p) for p in phones) and not (before or after)
        head = ["pau"] if bare or not before else list(before)
        tail = ["pau"] if bare or not after else list(after)
        if not bare and not before and not after:
            head, tail = [], []  # a lone syllable with consonants sings best as it is
        tokens = self.frontend.encode_units(head + phones + tail)
        enc, dur, ctrl = self._predict(tokens, slice(len(head), len(head) + len(phones)))
        v = next((i for i, p in enumerate(phones) if is_vowel(p)), len(phones) // 2)
        if consonant != 1.0 and v:  # the onset consonants longer or shorter (the vowel not)
            dur, ctrl = _stretch(dur, ctrl, v, consonant)
        up = upsample(enc, dur, int(dur.sum()))
        ctrl = ctrl.copy()
        onset = int(dur[:v].sum())
        _voiced(ctrl, slice(onset, onset + int(dur[v])))
        return Syllable(up, ctrl, onset, onset + int(dur[v]) // 2, onset + int(dur[v]))

    def sung(self, syllables: list[tuple[str, ...]], notes: list[retiming.Note],
             consonant: list[float] | None = None, pause: int = 2) -> SungPhrase:  # fmt: skip
        """A phrase sung on its notes: ``syllables`` (each its phones) encoded together, as
        spoken (co-articulation), their spoken durations re-timed onto ``notes`` (``syllable``
        indexes ``syllables``; times in seconds, any origin) by :func:`model.retiming.layout`,
        the rules the sung corpus was made with: onset consonants before the beat, the vowel
        to the note's end less the coda. ``consonant``: each syllable's onset length against
        the spoken one (1: as spoken). ``pause`` frames of silence before and after."""
        phones = [p for syl in syllables for p in syl]
        enc, spoken, prosody = self._encode(self.frontend.encode_units(["pau", *phones, "pau"]))
        syls, lengths, k = [], spoken[1:-1].astype(np.float64), 0
        for j, syl in enumerate(syllables):
            v = next((i for i, p in enumerate(syl) if is_vowel(p)), len(syl) // 2)
            syls.append(retiming.Syllable(tuple(range(k, k + v)), k + v,
                                          tuple(range(k + v + 1, k + len(syl)))))  # fmt: skip
            if consonant is not None:
                lengths[k : k + v] *= consonant[j]
            k += len(syl)
        frame_s = self.conv.hop_length / self.conv.sample_rate
        ends = np.cumsum(lengths) * frame_s
        times = [(e - d * frame_s, e, p) for e, d, p in zip(ends, lengths, phones, strict=True)]
        shift = sum(lengths[i] for i in syls[0].onset) * frame_s - notes[0].start
        notes = [retiming.Note(n.start + shift, n.dur, n.pitch, n.syllable) for n in notes]
        segs, changes, groups = retiming.layout(times, syls, notes, 0.5)
        starts = [round(t0 / frame_s) for t0, _, _, _ in segs]  # in phone order
        bounds = [*starts, max(starts[-1], round(segs[-1][1] / frame_s))]
        dur = np.array([pause, *np.diff(bounds), pause], np.int64)
        up = upsample(enc, dur, int(dur.sum()))
        ctrl = np.repeat(prosody, dur, axis=0)
        edges = np.cumsum(dur)
        for s in syls:
            _voiced(ctrl, slice(int(edges[s.vowel]), int(edges[s.vowel + 1])))  # token s.vowel + 1
        at = [pause + max(0, round(c / frame_s)) for c in retiming.note_changes(groups, changes)]
        beats = [pause + round(n.start / frame_s) for n in notes]
        ends = [int(edges[s.vowel + 1]) for s in syls]
        return SungPhrase(up, ctrl, beats[0], at, beats, ends)

    def inputs(self, up: np.ndarray, controls: np.ndarray, sung: float = 0.0) -> np.ndarray:
        """Generator inputs ``(T, D)`` from upsampled encodings ``(T, C + 1)`` and normalized
        controls ``(T, 3)`` (edited ones: a note's pitch), through the control projection."""
        return np.concatenate([up, self.model.project_controls(controls, sung)], -1)

    def outputs(self, y: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        """Generator frames ``(T, n_out)`` -> log-mel ``(n_mels, T)`` and, where the model has
        a pitch head, its f0 ``(T,)`` (Hz) and voicing ``(T,)`` (bool), else None."""
        n = self.model.n_mels
        log_mel = self.stats.mel(y[:, :n]).T
        if not self.model.pitch:
            return log_mel, None
        p = y[:, n:]
        return log_mel, (self.stats.hz(p[:, 0]), p[:, 1] > 0.0)

    def mel(self, text: str, speed: float = 1.0) -> np.ndarray:
        """``(n_mels, frames)`` log-mel for ``text`` under the voice's convention."""
        return self.mel_f0(text, speed)[0]

    def mel_f0(self, text: str, speed: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """``(n_mels, frames)`` log-mel and the frame f0 ``(frames,)`` (Hz, 0 = unvoiced) for
        ``text``: the pitch head's where the model has one, else the per-token pitch
        controls it was given."""
        x, control_f0 = self.speech(text, speed)
        log_mel, head = self.outputs(self.model.generate(x[None])[0])
        if head is None:
            return log_mel.astype(np.float32), control_f0
        voiced = heard_voicing(voicing_allowed(control_f0, self.voicing), head[1])
        f0 = np.where(voiced, head[0], 0.0).astype(np.float64)
        return log_mel.astype(np.float32), f0


HEAD_DECIDES = 0.5  # a frame where the pitch head's voicing is heard (voicing_allowed)
VOICING_RULES = ("head", "phones")


def voicing_allowed(control_f0: np.ndarray, rule: str = "head") -> np.ndarray:
    """Per frame of speech, where voicing may sound: 1.0 voiced whatever the pitch head says,
    :data:`HEAD_DECIDES` voiced where the head says so, 0.0 unvoiced. The head may voice
    the voiced phones (their pitch controls, per frame) and a frame either side, where a
    vowel's voicing starts and decays; with the voice's ``rule`` "phones" the voiced phones
    themselves are always voiced. The head alone, trained on YIN's voicing, runs voicing on
    into the unvoiced consonants (buzz): joe lost 9.1 % of its words to Whisper against
    3.2 % through RTISI-LA from the same mel, 5.8 % with the head kept to the phones. A
    head whose voicing agrees less with its corpus (joe's 94 % against the default voice's
    98 %) also unvoices frames of vowels (breath): joe's rule is "phones" (5.2 %;
    docs/results.md, Voice)."""
    if rule not in VOICING_RULES:
        raise ValueError(f"voicing rule must be one of {VOICING_RULES}; got {rule!r}")
    v = np.asarray(control_f0) > 0
    near = v.copy()
    near[1:] |= v[:-1]
    near[:-1] |= v[1:]
    out = np.where(near, HEAD_DECIDES, 0.0)
    if rule == "phones":
        out[v] = 1.0
    return out


def heard_voicing(allowed: np.ndarray, head_voiced: np.ndarray) -> np.ndarray:
    """The frames voiced, from :func:`voicing_allowed` and the pitch head's voicing."""
    allowed = np.asarray(allowed)
    return (allowed >= 1.0) | ((allowed > 0.0) & np.asarray(head_voiced, bool))


def packaged_voices() -> dict[str, Path]:
    """The voices packaged with melgand, by name (``default`` first)."""
    found = {p.parent.name: p for p in sorted(VOICES.glob("*/acoustic.safetensors"))}
    return dict(sorted(found.items(), key=lambda kv: kv[0] != "default"))


def packaged(conv: dsp.Convention | None = None, name: str = "default",
             sings: bool = True) -> Voice:  # fmt: skip
    """The packaged voice ``name`` (see :func:`packaged_voices`), with its singing model
    unless ``sings`` is off."""
    known = packaged_voices()
    if name not in known:
        missing = "the default voice is missing" if name == "default" else f"no voice {name!r}"
        raise checkpoint.CheckpointError(
            f"{missing} in {VOICES} (packaged: {sorted(known)}); reinstall melgand from a "
            "full checkout, or give a voice checkpoint's path"
        )
    return Voice.load(known[name], conv, sings)


def resolve(spec: str | Path | None, conv: dsp.Convention | None = None,
            sings: bool = True) -> tuple[Voice, str]:  # fmt: skip
    """A voice and its name from ``spec``: a packaged voice's name (None: the default) or an
    acoustic checkpoint's path (its name: the file's stem); its singing model unless
    ``sings`` is off."""
    known = packaged_voices()
    if spec is None or str(spec) in known:
        name = "default" if spec is None else str(spec)
        return packaged(conv, name, sings), name
    if not Path(spec).is_file():
        raise checkpoint.CheckpointError(
            f"voice {spec}: neither a packaged voice {sorted(known)} nor an "
            "acoustic checkpoint file"
        )
    return Voice.load(spec, conv, sings), Path(spec).stem
