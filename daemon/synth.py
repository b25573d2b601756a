"""Sounding voices: speech and sung notes, each a stream of samples made chunk by chunk.

A voice's ``render(n)`` returns up to ``n`` samples (fewer once it has ended), running the
acoustic model's generator and the vocoder in streaming mode, a chunk of mel frames at a
time, with their states kept in the voice. A note sustains its vowel until ``release()``;
its pitch follows the note (plus bends and vibrato) through the generator's f0 control.
What the frames are, in and out, the voice says (:class:`model.voice.Voice`); here are the
caches, the chunking, the batching of voices into one step and the vocoder.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from daemon import expression as expression_
from dsp.mel import mel_basis, repitch, warp
from model import retiming
from model import voice as voice_
from model.voice import Syllable, Voice


class Renderer:
    """What the voices share: the acoustic model, its statistics and the vocoder. Sung voices
    render with ``singing``: the renderer of the voice's singing model (``voice.singer``,
    the same vocoder and threads) where it has one, ``sings`` is on and the vocoder sounds
    the f0 given (the harmonic one: the singing model's held vowels carry too little of the
    mel's harmonic ripple for RTISI-LA to hear a pitch in), else this one."""

    def __init__(self, voice: Voice, vocoder, chunk_frames: int = 2, vocoder_threads: int = 2,
                 native_range: tuple[float, float] = (50.0, 56.0), sings: bool = True,
                 pool: ThreadPoolExecutor | None = None):  # fmt: skip
        if getattr(vocoder, "mel_fit", 0.0):  # its 5 frames (58 ms) would add to every latency
            vocoder = copy.copy(vocoder)  # the caller's own keeps its setting
            vocoder.mel_fit = 0.0
        self.voice, self.vocoder, self.chunk = voice, vocoder, chunk_frames
        self.native_range = native_range  # MIDI notes the model sings in tune by itself

        # the voices' vocoder steps run side by side (the DSP kernels release the GIL)
        self.pool = pool or ThreadPoolExecutor(vocoder_threads, thread_name_prefix="melgand-voc")
        self.rate, self.hop = voice.conv.sample_rate, voice.conv.hop_length
        basis = mel_basis(voice.conv)  # each mel band's centre, for the brightness tilt
        self.band_hz = basis.argmax(1) * self.rate / voice.conv.n_fft
        self._syllables: dict[tuple, Syllable] = {}
        self._sentences: dict[tuple[str, float], tuple[np.ndarray, np.ndarray]] = {}
        self._cache_lock = threading.Lock()  # two preparation threads share the caches
        self.singing = self
        if sings and voice.singer is not None and self.needs_f0:
            own = voice.singer.header.get("native_range")
            rng = (own[0], own[-1]) if own else native_range
            self.singing = Renderer(voice.singer, vocoder, chunk_frames, vocoder_threads, rng,
                                    sings=False, pool=self.pool)  # fmt: skip

    @classmethod
    def configured(cls, voice: Voice, vocoder, d) -> Renderer:
        """As the ``[daemon]`` section ``d`` of the config says; the native range is the
        voice's own where its header has one (``native_range``: the register it was trained
        to sing), else the config's; ``d.singing_model``: whether a singing model sings."""
        own = voice.header.get("native_range")
        lo, hi = (own or d.native_range)[0], (own or d.native_range)[-1]
        return cls(voice, vocoder, d.chunk_frames, d.vocoder_threads, (lo, hi), d.singing_model)

    @property
    def needs_f0(self) -> bool:
        """Whether the vocoder sounds the frame f0 (the harmonic one) instead of the mel's."""
        return bool(getattr(self.vocoder, "needs_f0", False))

    def sentence(self, text: str, speed: float) -> tuple[np.ndarray, np.ndarray]:
        """Generator inputs ``(T, D)`` for ``text`` and the f0 ``(T,)`` (Hz) of their pitch
        controls (cached: repeated phrases start at once)."""
        key = (text, speed)
        with self._cache_lock:
            if key in self._sentences:
                return self._sentences[key]
        inputs, f0 = self.voice.speech(text, speed)
        with self._cache_lock:
            if len(self._sentences) >= 256:
                self._sentences.pop(next(iter(self._sentences)))
            self._sentences[key] = (inputs, f0)
        return inputs, f0

    phones_of = staticmethod(voice_.phones_of)

    def syllable(self, lyric: str | tuple[str, ...], before: tuple[str, ...] = (),
                 after: tuple[str, ...] = (), consonant: float = 1.0) -> Syllable:  # fmt: skip
        """The voice's :meth:`~model.voice.Voice.syllable` ``(up, controls, onset, hold,
        coda)``, its onset consonants ``consonant`` times as long as spoken, cached (its
        controls a copy, the note's to edit)."""
        key = (before, lyric, after, float(consonant))
        with self._cache_lock:
            hit = self._syllables.get(key)
        if hit is None:
            hit = self.voice.syllable(lyric, before, after, consonant=consonant)
            with self._cache_lock:
                if len(self._syllables) >= 1024:
                    self._syllables.pop(next(iter(self._syllables)))
                self._syllables[key] = hit
        return hit._replace(controls=hit.controls.copy())


class _Streaming:
    """Frames in, samples out: the generator and vocoder states and a sample buffer."""

    def __init__(self, r: Renderer, gain: float = 1.0):
        self.r, self.gain = r, gain
        self.gen_state = self.voc_state = None
        # per frame fed, in order: the f0 (Hz) its inputs ask for, their voicing, the
        # frequency warp of its mel (a note's beyond the native range; else 1) and, for a held
        # vowel, how much of its kept spectrum it takes (see Note._hold; else 0)
        self.f0_in: deque[tuple[float, float, float, float]] = deque()
        self.buf = np.zeros(0, np.float32)
        self.ended = False
        self.released = False

    def _frames(self) -> np.ndarray | None:
        """The next chunk of generator inputs ``(k, D)``; None when there are no more."""
        raise NotImplementedError

    def _more(self) -> None:
        self._step_alone(self._frames())

    def _step_alone(self, x: np.ndarray | None) -> None:
        gen = self.r.voice.model
        if x is not None:
            y, self.gen_state = gen.stream(x[None], self.gen_state)
        else:
            y = gen.flush(self.gen_state) if self.gen_state is not None else None
        self._vocode(y, final=x is None)

    def _voc_inputs(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Generator frames ``(1, k, n_out)`` -> the vocoder's log-mel ``(n_mels, k)`` and
        frame f0 ``(k,)`` (Hz, 0 = unvoiced)."""
        log_mel, head = self.r.voice.outputs(y[0])
        given = np.array([self.f0_in.popleft() if self.f0_in else (0.0, 0.0, 1.0, 0.0)
                          for _ in range(log_mel.shape[1])]).reshape(-1, 4)  # fmt: skip
        log_mel, head = self._hold(log_mel, head, given)
        return self._shape(log_mel, given), self._f0_heard(given, head)

    def _hold(self, log_mel: np.ndarray, head: tuple | None, given: np.ndarray):
        """The generator's frames as sounded (a note holds its vowel's spectrum here)."""
        return log_mel, head

    breath = 0.0  # breathiness 0..1, for a vocoder with a noise part (notes set it)

    def _extra(self) -> dict:
        """The vocoder's extra inputs: the harmonic one takes the breathiness."""
        return {"breath": self.breath} if self.r.needs_f0 and self.breath else {}

    def _f0_heard(self, given: np.ndarray, head: tuple | None) -> np.ndarray:
        """The f0 to sound, from the ``(f0, voicing)`` asked for per frame and the pitch
        head's ``(Hz, voiced)`` (None without one): speech takes the pitch head's contour
        where the voice has one, voiced as the phones allow it
        (:func:`model.voice.voicing_allowed`, as :meth:`model.voice.Voice.mel_f0`), else
        its inputs' per-token pitch."""
        if head is None:
            return np.where(given[:, 1] > 0.0, given[:, 0], 0.0)
        return np.where(voice_.heard_voicing(given[:, 1], head[1]), head[0], 0.0)

    def _append(self, out: np.ndarray) -> None:
        self.buf = np.concatenate([self.buf, out]).astype(np.float32, copy=False)

    def _vocode(self, y: np.ndarray | None, final: bool) -> None:
        """Generator frames ``(1, k, n_mels)`` (normalized) -> samples in the buffer."""
        r, parts = self.r, []
        if y is not None and y.shape[1]:
            mel, f0 = self._voc_inputs(y)
            out, self.voc_state = r.vocoder.stream(mel, self.voc_state, f0=f0, **self._extra())
            parts.append(out)
        if final:
            if self.voc_state is not None:
                parts.append(r.vocoder.flush(self.voc_state))
            self.ended = True
        if parts:
            self.buf = np.concatenate([self.buf, *parts]).astype(np.float32, copy=False)

    def _shape(self, log_mel: np.ndarray, given: np.ndarray) -> np.ndarray:
        """A last change to the log-mel before the vocoder, with each frame's ``(f0, voicing,
        warp)`` (notes move their pitch here)."""
        return log_mel

    def prefill(self, n: int) -> None:
        """Make the first ``n`` samples now (off the render thread)."""
        while len(self.buf) < n and not self.ended:
            self._more()

    def render(self, n: int) -> np.ndarray:
        while len(self.buf) < n and not self.ended:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out * self.gain

    @property
    def done(self) -> bool:
        return self.ended and len(self.buf) == 0

    def release(self) -> None:
        self.released = True


def fill(voices: list[_Streaming], n: int) -> None:
    """Make each voice hold ``n`` samples (or end), running the generator once per chunk
    for all of a model's voices together (one batched GRU step a renderer), then each
    voice's vocoder. Once one voice must step, every voice that holds less than a chunk
    steps with it: voices started in different blocks fall into one batch, not a batch per
    block of a chunk."""
    while True:
        if not any(len(v.buf) < n and not v.ended for v in voices):
            return
        need = [v for v in voices
                if len(v.buf) < max(n, v.r.chunk * v.r.hop) and not v.ended]  # fmt: skip
        batches: dict[Renderer, list] = {}  # by renderer: one model, one vocoder
        for v in need:
            x = v._frames()
            if x is None or x.shape[0] != v.r.chunk:
                v._step_alone(x)  # the end, or a short last chunk
            else:
                batches.setdefault(v.r, []).append((v, x))
        for batch in batches.values():
            _step_batch(batch)


def _step_batch(batch: list[tuple[_Streaming, np.ndarray]]) -> None:
    """One generator step for voices of one renderer (each with a chunk of inputs), then
    their vocoders: one batched call where the vocoder has one, else side by side."""
    gen = batch[0][0].r.voice.model
    st = gen.join([v.gen_state if v.gen_state is not None
                   else gen.initial_state(1) for v, _ in batch])  # fmt: skip
    y, st = gen.stream(np.stack([x for _, x in batch]), st)
    for (v, _), state in zip(batch, gen.part(st), strict=True):
        v.gen_state = state
    parts = [y[i : i + 1] for i in range(len(batch))]
    group = [v for v, _ in batch]
    r = group[0].r
    if len(batch) == 1:
        group[0]._vocode(y, final=False)
    elif hasattr(r.vocoder, "stream_many"):  # a network: one call for all the voices
        ins = [v._voc_inputs(part) for v, part in zip(group, parts, strict=True)]
        states = [v.voc_state for v in group]
        extra = {"breaths": [v.breath for v in group]} if r.needs_f0 else {}
        done = r.vocoder.stream_many([m for m, _ in ins], states, r.pool,
                                     [f for _, f in ins], **extra)  # fmt: skip
        for v, (out, state) in zip(group, done, strict=True):
            v.voc_state = state
            v._append(out)
    else:
        list(r.pool.map(_Streaming._vocode, group, parts, [False] * len(group)))


class Speech(_Streaming):
    def __init__(self, r: Renderer, text: str, speed: float = 1.0, gain: float = 1.0):
        super().__init__(r, gain)
        self.inputs, self.f0 = r.sentence(text, speed)
        self.allowed = voice_.voicing_allowed(self.f0, r.voice.voicing)  # where voicing sounds
        self.i = 0

    def _frames(self):
        if self.i >= len(self.inputs) or self.released:
            return None
        x = self.inputs[self.i : self.i + self.r.chunk]
        for k in range(self.i, self.i + len(x)):
            self.f0_in.append((self.f0[k], float(self.allowed[k]), 1.0, 0.0))
        self.i += len(x)
        return x


class Sung(_Streaming):
    """A sung voice: a pitch that follows its notes, with expression (:mod:`daemon.expression`):
    the settings are ``params`` (shared, live: ``/param/<name>``) under the voice's own
    ``own`` (a score note's fields, ``/ne/<name>``). Per frame it carries ``breath`` (0..1)
    and ``brightness`` (dB/octave, velocity included) for the vocoder. ``pitch`` in MIDI
    numbers; ``onset``: the frame its (first) vowel starts, where the vibrato counts from.
    ``r`` is the singing renderer (``Renderer.singing``): the subclasses take it, first of all."""

    lead = 0  # samples of onset consonants before the (first) beat
    tail = 0  # samples after the vowel (the coda)
    TOP = 0.45  # the highest f0 sounded, of the sample rate (a harmonic below Nyquist)

    def __init__(self, r: Renderer, pitch: float, velocity: float, params: dict | None,
                 own: dict | None, onset: int):  # fmt: skip
        top = 69 + 12 * np.log2(self.TOP * r.rate / 440.0)
        if pitch > top:
            raise ValueError(
                f"pitch {pitch:g} is above the highest note this voice sounds at "
                f"{r.rate} Hz (MIDI {top:.1f}): send a pitch of {int(top)} or lower"
            )
        super().__init__(r, gain=(velocity / 127.0) ** 1.5)
        self.pitch, self.bend, self.params = pitch, 0.0, params if params is not None else {}
        self.target, self.velocity = pitch, velocity
        self.own = dict(own or {})  # this voice's settings over the live ones
        seed = self.own.pop("seed", None)
        if seed is None:  # reproducible: from the live seed and what tells notes apart
            seed = expression_.score_seed(int(self.params.get("seed", 0)), pitch, velocity)
        self.contour = expression_.Contour(pitch, r.hop / r.rate, int(seed), onset)
        e = self.expression
        self.breath, self.brightness = e.breath, e.tilt_db(velocity)

    @property
    def expression(self) -> expression_.Expression:
        """The settings now: the defaults, the live ``params``, this note's own."""
        return expression_.Expression.of(self.params, self.own)

    def _f0(self) -> tuple[float, float, float]:
        """(normalized f0 for the generator, frequency warp, f0 in Hz): the generator sings
        inside the voice's native range; beyond it, :meth:`_shape` takes the mel the rest of
        the way, and a harmonic vocoder sounds the note's own f0. The pitch is the note's
        expression contour (:class:`daemon.expression.Contour`: portamento, overshoot,
        vibrato, fluctuation)."""
        e = self.expression
        self.breath, self.brightness = e.breath, e.tilt_db(self.velocity)
        self.pitch = self.contour.control  # where the (glided) control is, without expression
        midi = self.contour.step(e) + self.bend
        sung = self._native(midi)
        hz = 440.0 * 2 ** ((sung - 69) / 12)
        warp = 2 ** ((midi - sung) / 12)  # beyond the range: see _shape
        heard = min(440.0 * 2 ** ((midi - 69) / 12), self.TOP * self.r.rate)  # bends, vibrato
        return self.r.voice.stats.log_f0(hz), warp, heard

    def _native(self, midi: float) -> float:
        """The pitch the generator is asked for: ``midi`` inside its native range."""
        lo, hi = self.r.native_range
        return min(max(midi, lo), hi)

    def glide_to(self, pitch: float, seconds: float | None = None,
                 expression: dict | None = None) -> None:  # fmt: skip
        """Legato: the held vowel moves to ``pitch`` over ``seconds`` (None: the note's
        ``portamento``; 0: at once), with overshoot, and its vibrato starts over; a score
        phrase's next note brings its own settings, ``expression``, which replace these."""
        if expression is not None:
            self.own = {k: v for k, v in expression.items() if k != "seed"}
        self.target = pitch
        self.contour.glide(pitch, self.expression.portamento if seconds is None else seconds)

    def _f0_heard(self, given: np.ndarray, head: tuple | None) -> np.ndarray:
        """A note sounds its own pitch where its syllable's phone is voiced and, where the
        voice has a pitch head, the head agrees. The head alone (trained on speech) lets
        the harmonics into the consonants beside a vowel: "count the boats that sail" was
        heard "come to boot that tail" on every seed, and the bench songs a fifth up lost
        twice the words (docs/results.md)."""
        voiced = given[:, 1] > 0.5
        if head is not None:
            voiced &= head[1]
        return np.where(voiced, given[:, 0], 0.0)

    def _shape(self, log_mel: np.ndarray, given: np.ndarray) -> np.ndarray:
        """The note's brightness (a spectral tilt), then for frames beyond the native range:
        for the harmonic vocoder, which sounds the note's f0, the mel moved to that pitch
        with its formants kept (:func:`dsp.mel.repitch`); for the others, which take the
        pitch from the mel, the mel warped to the note (formants move with it)."""
        log_mel = expression_.tilt(log_mel, self.brightness, self.r.band_hz)
        k = given[:, 2]
        if (k == 1.0).all():
            return log_mel
        if self.r.needs_f0:
            moved = repitch(log_mel, given[:, 0], self.r.voice.conv)
            return np.where(k[None] != 1.0, moved, log_mel)
        return warp(log_mel, k, self.r.voice.conv)


class Note(Sung):
    """A sung syllable: the consonants before the vowel, the vowel held until release, the
    rest after it (a live note, whose length nobody knows at note-on)."""

    def __init__(self, r: Renderer, pitch: float, velocity: float,
                 lyric: str | tuple[str, ...] = "la", params: dict | None = None,
                 context: tuple[tuple, tuple] = ((), ()), *,
                 expression: dict | None = None):  # fmt: skip
        r = r.singing  # the voice's singing model, where it has one
        e = expression_.Expression.of(params, expression)  # the onset's length is set now
        syl = r.syllable(lyric, *context, consonant=2.0**e.consonant)
        super().__init__(r, pitch, velocity, params, expression, syl.onset)
        self.up, self.ctrl, onset, self.hold, self.coda = syl
        self.lead = onset * r.hop  # samples of consonants before the vowel
        self.tail = (len(self.up) - self.coda) * r.hop  # and after it
        self.i = 0
        self.sustained = False  # whether the vowel's hold frame has been fed

    kept: tuple[np.ndarray, bool] | None = None  # the held vowel's spectrum and voicing

    def _hold(self, log_mel, head, given):
        """A held vowel: its first sustained frame's spectrum is kept, and the frames after
        it take ``hold`` of it (the rest: the generator's own frames), as a stretched
        recording would; the vocoder's f0 (vibrato) moves on over it."""
        mode = given[:, 3]
        if not mode.any():
            return log_mel, head
        log_mel = log_mel.copy()
        voiced = None if head is None else head[1].copy()
        for j in np.flatnonzero(mode):
            if mode[j] < 0:
                self.kept = (log_mel[:, j].copy(), True if voiced is None else bool(voiced[j]))
            elif self.kept is not None:
                log_mel[:, j] = mode[j] * self.kept[0] + (1 - mode[j]) * log_mel[:, j]
                if voiced is not None and mode[j] >= 0.5:
                    voiced[j] = self.kept[1]
        return log_mel, head if head is None else (head[0], voiced)

    def _frames(self):
        rows = []
        n = len(self.up)
        while len(rows) < self.r.chunk:
            if self.released and self.hold <= self.i < self.coda:
                self.i = self.coda  # note-off: the vowel stops, the coda is sung
            held = 0.0
            if self.i < self.hold or (self.released and self.i < n):
                k = self.i
                self.i += 1
            elif not self.released:
                k = self.hold  # sustain
                held = self.expression.hold if self.sustained else -1.0
                self.sustained = True
            else:
                break
            c = self.ctrl[k].copy()
            c[0], factor, hz = self._f0()  # every frame at the note's pitch, voiced or not
            self.f0_in.append((hz, float(c[1]), factor, held))
            rows.append((k, c))
        if not rows:
            return None
        up = self.up[[k for k, _ in rows]]
        return self.r.voice.inputs(up, np.stack([c for _, c in rows]), sung=1.0)


PAUSE = 2  # frames of pause a phrase's generator starts with (unheard), as training items do


class Phrase(Sung):
    """A score's run of touching notes sung by one voice, as a singer sings a phrase: its
    syllables encoded together and re-timed onto the notes (:meth:`model.voice.Voice.sung`:
    onset consonants before each beat, vowels to the note's end less the coda), the
    generator running through it without a break; each later note's pitch is a legato move
    (portamento, overshoot, preparation, its vibrato from its start) made where its syllable
    begins, over its onset consonants at most (a melisma's: a portamento from its beat), each
    note bringing its own settings (``own``, one dict a note). ``melisma``: whether each note
    holds the syllable before it on. It ends by itself after its last note; ``release``
    stops it at once."""

    def __init__(self, r: Renderer, notes: list[dict], phones: list[tuple[str, ...]],
                 params: dict | None, own: list[dict], melisma: list[bool]):  # fmt: skip
        r = r.singing  # the voice's singing model, where it has one
        s, moves = self._plan(r, notes, phones, params, own, melisma)
        super().__init__(r, notes[0]["pitch"], notes[0]["velocity"], params, own[0],
                         s.lead - PAUSE)  # fmt: skip
        self.up, self.ctrl, self.lead = s.up, s.controls, (s.lead - PAUSE) * r.hop
        self.moves, self.moved = moves, 0  # the notes glided to so far
        # the pause before the phrase, unheard: the generator's start
        c = self.ctrl[:PAUSE].copy()
        c[:, 0] = r.voice.stats.log_f0(440.0 * 2 ** ((self._native(self.pitch) - 69) / 12))
        x = r.voice.inputs(self.up[:PAUSE], c, sung=1.0)
        self.gen_state = r.voice.model.stream(x[None])[1]
        self.i = PAUSE

    @staticmethod
    def _plan(r: Renderer, notes, phones, params, own, melisma):
        """The phrase's material (:class:`model.voice.SungPhrase`) and each later note's move:
        ``[(frame, note, its settings, the glide's seconds)]``, made where its syllable
        begins (the vowel before left whole: moved earlier, it blurs), over its onset
        consonants at most."""
        syllables, timed, consonant = [], [], []
        for n, ph, o, m in zip(notes, phones, own, melisma, strict=True):
            if not timed or not m:
                syllables.append(ph)
                consonant.append(2.0 ** expression_.Expression.of(params, o).consonant)
            timed.append(retiming.Note(n["start"], n["dur"], n["pitch"], len(syllables) - 1))
        s = r.voice.sung(syllables, timed, consonant, pause=PAUSE)
        frame_s, moves = r.hop / r.rate, []
        for at, beat, n, o in zip(s.changes[1:], s.beats[1:], notes[1:], own[1:], strict=True):
            e = expression_.Expression.of(params, o)
            lead = (beat - at) * frame_s  # 0: a melisma, which glides from its beat
            moves.append((at, n, o, min(e.portamento, lead) if lead > 0 else e.portamento))
        return s, moves

    def _rows(self, n: int) -> list[int]:
        """The plan's frames for the next ``n`` generator steps (fewer at its end)."""
        return list(range(self.i, min(self.i + n, len(self.up))))

    def _frames(self):
        if self.released:
            return None
        ks = self._rows(self.r.chunk)
        if not ks:
            return None
        ctrl = self.ctrl[ks].copy()
        for j, k in enumerate(ks):
            while self.moved < len(self.moves) and self.moves[self.moved][0] <= k:
                _, note, own, seconds = self.moves[self.moved]  # the next note: its pitch
                self.moved += 1
                self.velocity = note["velocity"]
                self.glide_to(note["pitch"], seconds, expression=own)
            ctrl[j, 0], factor, hz = self._f0()
            self.f0_in.append((hz, float(ctrl[j, 1]), factor, 0.0))
        self.i = ks[-1] + 1
        return self.r.voice.inputs(self.up[ks], ctrl, sung=1.0)
