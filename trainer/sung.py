"""Sung copies of speech: WORLD re-timing of syllables onto notes (the speech-to-singing
baseline, and the corpus's sung items).

A note is a syllable: its onset consonants end on the beat at their spoken length (shortened
only where they would run into the previous note's vowel), the vowel is stretched to the
note's end less the coda, and the coda ends at note-off (or where the next note's onset
begins, legato). A melisma (one syllable over several notes) holds the vowel and glides.
Rests are silence. f0 comes from the notes with expression (:class:`Expression`); the
spectral envelope is kept as spoken, whatever the pitch.

Phone times are ``(start, end, phone)`` in seconds, Festival's radio phone names
(:mod:`model.g2p`), silences ``pau`` (also accepted: ``sil``, ``sp``, ``spn``, ``h#``, empty).
On disk they are the corpus's ``segments/<id>.lab`` format: one phone a line,
``start end phone``, seconds, in order, e.g. ``0.2150 0.2900 m`` — Festival's segment times
or an aligner's durations written out the same way.

:func:`make_sung` writes sung copies into an LJSpeech-layout directory (a Festival corpus or
a user's dataset with ``segments/``): ``wavs/<id>_sung.wav``, ``segments/<id>_sung.lab``,
``f0/<id>_sung.npy`` (the f0 it was sung at, Hz, 0 unvoiced, one value per hop-256 frame at
22050 Hz: frame t centred on sample t*256+128) and ``notes/<id>_sung.json`` (the melody),
plus their ``metadata.csv`` rows (same text as the source).
"""

from __future__ import annotations

import json
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from model.retiming import Note, Syllable, layout, note_changes, syllabify

FRAME_PERIOD = 5.0  # ms, WORLD's analysis and synthesis frame period
SUFFIX = "_sung"
DIPHTHONGS = frozenset({"ay", "aw", "oy", "ey", "ow"})
HOP, RATE = 256, 22050  # the f0 files' frame rate (the corpus's mel frames)


def _pyworld():
    with warnings.catch_warnings():  # pyworld imports the deprecated pkg_resources
        warnings.simplefilter("ignore", UserWarning)
        import pyworld
    return pyworld


@dataclass(frozen=True)
class Expression:
    """f0 expression; a zero switches each part off (``Expression.off()``: plain notes)."""

    vibrato_rate: float = 5.5  # Hz
    vibrato_depth: float = 35.0  # cents, half peak-to-peak
    vibrato_min_note: float = 0.5  # s: shorter notes get none
    vibrato_delay: float = 0.25  # fraction of the note before it starts
    vibrato_fade: float = 0.2  # s to fade in
    portamento: float = 0.08  # s, the glide between notes (and along a melisma)
    overshoot: float = 0.5  # 0..1: strength of the damped overshoot after a pitch change
    preparation: float = 0.3  # 0..1: the dip against the change before it
    fluctuation: float = 4.0  # cents rms of fine fluctuation (smoothed noise)
    seed: int = 0  # the fluctuation's and the vibrato phase's noise

    @classmethod
    def off(cls) -> Expression:
        return cls(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


# ----------------------------------------------------------------------------- syllables


def read_lab(path: Path) -> list[tuple[float, float, str]]:
    from trainer.corpus import read_segments

    return read_segments(Path(path))


def write_lab(path: Path, phones: list[tuple[float, float, str]]) -> None:
    text = "".join(f"{s:.4f} {e:.4f} {p}\n" for s, e, p in phones)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- f0


def _second_order(x: np.ndarray, fp: float, freq: float, zeta: float) -> np.ndarray:
    """A unit-gain damped second-order system (Saitou et al. 2007) run over ``x``."""
    w, dt = 2 * np.pi * freq, fp / 1000.0
    y, v = np.empty_like(x), 0.0
    yi = x[0]
    for i, xi in enumerate(x):  # semi-implicit Euler: stable at these rates
        v += dt * (w * w * (xi - yi) - 2 * zeta * w * v)
        yi += dt * v
        y[i] = yi
    return y


def note_f0(notes: list[Note], n_frames: int, expr: Expression, fp: float = FRAME_PERIOD,
            changes: list[float] | None = None) -> np.ndarray:  # fmt: skip
    """The sung f0 (Hz, every frame; the caller decides voicing) for ``notes``; the pitch of
    a note starts at ``changes[i]`` (default its start: the onset consonants of a new
    syllable are sung at the new pitch)."""
    t = np.arange(n_frames) * fp / 1000.0
    changes = changes or [n.start for n in notes]
    cents = np.full(n_frames, 100.0 * notes[0].pitch)
    for n, c in zip(notes, changes, strict=True):
        cents[t >= c] = 100.0 * n.pitch
    step = cents.copy()
    if expr.overshoot or expr.preparation:  # on the step, before smoothing
        d = step - step[0]
        shaped = step.copy()
        if expr.overshoot:
            shaped += expr.overshoot * (_second_order(d, fp, 5.0, 0.45) - d)
        if expr.preparation:
            shaped += expr.preparation * (_second_order(d[::-1], fp, 6.0, 0.6)[::-1] - d)
        cents = shaped
    if expr.portamento:
        k = max(1, round(expr.portamento * 1000 / fp))
        win = np.hanning(k + 2)[1:-1]
        pad = np.pad(cents, (k, k), mode="edge")
        cents = np.convolve(pad, win / win.sum(), mode="same")[k:-k]
    rng = np.random.default_rng(expr.seed)
    if expr.vibrato_depth and expr.vibrato_rate:
        phase = rng.uniform(0, 2 * np.pi)
        for n in notes:  # melisma notes are notes too
            if n.dur < expr.vibrato_min_note:
                continue
            a = n.start + expr.vibrato_delay * n.dur
            m = (t >= a) & (t < n.end)
            env = np.clip((t[m] - a) / max(expr.vibrato_fade, 1e-3), 0, 1)
            cents[m] += (
                expr.vibrato_depth
                * env
                * np.sin(2 * np.pi * expr.vibrato_rate * (t[m] - a) + phase)
            )
    if expr.fluctuation:
        k = max(1, int(0.05 * 1000 / fp))  # ~50 ms smoothing: slow wobble, not jitter
        noise = np.convolve(rng.standard_normal(n_frames + 2 * k), np.hanning(2 * k + 1), "same")
        noise = noise[k:-k]
        cents += expr.fluctuation * noise / (noise.std() + 1e-9)
    return 440.0 * 2.0 ** ((cents / 100.0 - 69.0) / 12.0)


# ----------------------------------------------------------------------------- re-timing


@dataclass
class World:
    f0: np.ndarray
    sp: np.ndarray
    ap: np.ndarray
    sr: int

    @property
    def median_f0(self) -> float:
        v = self.f0[self.f0 > 0]
        return float(np.median(v)) if v.size else 200.0


def analyze(audio: np.ndarray, sr: int, harvest: bool = False) -> World:
    """WORLD analysis at 5 ms: DIO + StoneMask (or Harvest), CheapTrick, D4C."""
    pw = _pyworld()
    x = np.ascontiguousarray(audio, dtype=np.float64)
    if harvest:
        f0, t = pw.harvest(x, sr, frame_period=FRAME_PERIOD)
    else:
        f0, t = pw.dio(x, sr, frame_period=FRAME_PERIOD)
        f0 = pw.stonemask(x, f0, t, sr)
    return World(f0, pw.cheaptrick(x, f0, t, sr), pw.d4c(x, f0, t, sr), sr)


def _interp_frames(x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    pos = np.clip(pos, 0, len(x) - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, len(x) - 1)
    w = (pos - i0)[:, None]
    return (1 - w) * x[i0] + w * x[i1]


def retime(
    audio: np.ndarray,
    sr: int,
    phones: list[tuple[float, float, str]],
    notes: list[Note],
    expression: Expression | None = None,
    syllables: list[Syllable] | None = None,
    world: World | None = None,
    tail: float = 0.3,
    min_vowel: float = 0.5,
    edge: float = 0.03,
) -> tuple[np.ndarray, list[tuple[float, float, str]], np.ndarray]:
    """Speech ``audio`` with its phone times sung on ``notes``.

    Returns ``(sung audio at sr, sung phone times [(start, end, phone)] with 'pau' between,
    f0 contour)`` — f0 in Hz per 5 ms WORLD frame (frame i at i*5 ms), 0 where unvoiced.
    ``syllables`` defaults to :func:`syllabify`; ``world`` to :func:`analyze` of ``audio``.
    Where a note's onset and coda consonants would leave its vowel under ``min_vowel`` of the
    note (a fraction; at least 60 ms), they are shortened in proportion. A stretched vowel
    keeps ``edge`` seconds at each end at spoken rate (its transitions) and stretches its
    middle; a diphthong holds its first target and glides at its end.
    """
    expr = expression if expression is not None else Expression()
    syls = syllables if syllables is not None else syllabify(phones)
    if not syls:
        raise ValueError("no vowel in the phone times: nothing to sing")
    w = world if world is not None else analyze(audio, sr)
    segs, changes, groups = layout(phones, syls, notes, min_vowel)
    fp = FRAME_PERIOD / 1000.0
    length = max(notes[-1].end, segs[-1][1]) + tail
    n_out = int(np.ceil(length / fp)) + 1
    t_out = np.arange(n_out) * fp
    src = np.full(n_out, -1.0)  # source frame position, -1: silence
    force = np.zeros(n_out, bool)  # a vowel: voiced throughout
    for t0, t1, i, vowel in segs:
        m = (t_out >= t0) & (t_out < t1)
        if not m.any():
            continue
        s0, s1 = phones[i][0], phones[i][1]
        u = t_out[m] - t0
        d_out, d_in = t1 - t0, s1 - s0
        if vowel and d_out > d_in:  # stretch a held part; the transitions at spoken rate
            if phones[i][2] in DIPHTHONGS:  # hold the first target, glide at the end
                a, b = 0.2 * d_in, 0.45 * d_in
            else:
                e = min(edge, d_in / 4)
                a, b = e, d_in - e
            hold = d_out - (d_in - (b - a))
            pos = np.where(
                u < a, u, np.where(u < a + hold, a + (u - a) * (b - a) / hold, b + u - a - hold)
            )
        else:
            pos = u * d_in / max(d_out, 1e-9)
        src[m] = (s0 + pos) / fp
        force[m] = vowel
    on = src >= 0
    sp = np.full((n_out, w.sp.shape[1]), 1e-12)
    ap = np.ones((n_out, w.ap.shape[1]))
    log_sp = np.log(np.maximum(w.sp, 1e-12))
    sp[on] = np.exp(_interp_frames(log_sp, src[on]))
    ap[on] = np.clip(_interp_frames(w.ap, src[on]), 0.0, 1.0)
    voiced_src = w.f0[np.clip(np.round(src).astype(int), 0, len(w.f0) - 1)] > 0
    voiced = on & (voiced_src | force)
    contour = note_f0(notes, n_out, expr, FRAME_PERIOD, note_changes(groups, changes))
    f0 = np.where(voiced, contour, 0.0)
    y = _pyworld().synthesize(f0, sp, ap, sr, frame_period=FRAME_PERIOD)
    y = y[: round(length * sr)].astype(np.float32)
    out_phones, t = [], 0.0
    for t0, t1, i, _ in segs:
        if t1 - t0 <= 1e-4:
            continue
        if t0 > t + 1e-4:
            out_phones.append((t, t0, "pau"))
        out_phones.append((max(t0, t), t1, phones[i][2]))
        t = t1
    if length > t + 1e-4:
        out_phones.append((t, length, "pau"))
    return y, out_phones, f0.astype(np.float32)


def to_hop(f0: np.ndarray, n_samples: int, sr: int = RATE, hop: int = HOP) -> np.ndarray:
    """A 5 ms f0 contour at the corpus's frame rate: frame t centred on sample t*hop+hop/2
    (as many frames as the mel spectrogram has); log-interpolated, 0 where unvoiced."""
    from dsp import DEFAULT

    n = DEFAULT.n_frames(n_samples) if (sr, hop) == (RATE, HOP) else n_samples // hop
    pos = (np.arange(n) * hop + hop / 2) / sr / (FRAME_PERIOD / 1000.0)
    i0 = np.clip(np.floor(pos).astype(int), 0, len(f0) - 1)
    i1 = np.clip(i0 + 1, 0, len(f0) - 1)
    a = pos - np.floor(pos)
    both = (f0[i0] > 0) & (f0[i1] > 0)
    lf = np.exp((1 - a) * np.log(np.maximum(f0[i0], 1e-3)) + a * np.log(np.maximum(f0[i1], 1e-3)))
    near = np.where(a < 0.5, f0[i0], f0[i1])
    return np.where(both, lf, np.where((f0[i0] > 0) | (f0[i1] > 0), near, 0.0)).astype(np.float32)


# ----------------------------------------------------------------------------- melodies


def melody(
    rng: np.random.Generator,
    n_syllables: int,
    median_f0: float = 200.0,
    start: float = 0.4,
    span: float = 12.0,
    min_dur: float = 0.15,
    max_dur: float = 2.0,
    rest_p: float = 0.12,
    melisma_p: float = 0.08,
    register: tuple[float, float] | None = None,
) -> list[Note]:
    """A generated melody of ``n_syllables`` syllables: note lengths ``min_dur``..``max_dur``
    s (median 0.45 s, one in nine over 1 s), pitches within ``span`` semitones either side
    of the speaker's median f0 (a random walk in the major scale with leaps, drifting across
    the range; ``register`` ``(lo, hi)`` MIDI replaces that range), rests, legato,
    occasional melismas (2-3 notes on one syllable). The same rng state gives the same
    melody."""
    centre = 69.0 + 12.0 * np.log2(median_f0 / 440.0)
    lo, hi = centre - span, centre + span
    if register is not None:
        lo, hi = float(min(register)), float(max(register))
        centre = (lo + hi) / 2
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    tonic = round(centre) + int(rng.integers(-6, 6))
    degrees = np.array([tonic + 12 * o + s for o in range(-3, 4) for s in scale], float)
    degrees = degrees[(degrees >= lo) & (degrees <= hi)]
    goal = rng.uniform(lo, hi)  # the register the walk drifts towards
    idx = int(np.argmin(np.abs(degrees - rng.uniform(centre - 4, centre + 4))))
    notes, t = [], start
    for s in range(n_syllables):
        count = 1 if rng.random() >= melisma_p else int(rng.integers(2, 4))
        for _ in range(count):
            if rng.random() < 0.15:
                goal = rng.uniform(lo, hi)
            if rng.random() < 0.12:
                step = int(rng.integers(3, 8)) * (1 if rng.random() < 0.5 else -1)  # a leap
            else:
                step = int(rng.choice([-2, -1, -1, 0, 1, 1, 2]))
            step += int(np.sign(goal - degrees[idx])) * (rng.random() < 0.4)
            idx = int(np.clip(idx + step, 0, len(degrees) - 1))
            dur = float(np.clip(np.exp(rng.normal(np.log(0.45), 0.65)), min_dur, max_dur))
            if count > 1:
                dur = float(np.clip(dur * 0.6, min_dur, max_dur))
            notes.append(Note(round(t, 4), round(dur, 4), float(degrees[idx]), s))
            t += dur
        if s < n_syllables - 1 and rng.random() < rest_p:
            t += float(rng.uniform(0.1, 0.6))
    return notes


# ----------------------------------------------------------------------------- corpus


def _sing_item(args) -> str:
    root, item_id, seed, index, register = args
    import soundfile as sf
    import soxr

    sid = item_id + SUFFIX
    if _is_done(root, sid):
        return sid
    y, sr = sf.read(root / "wavs" / f"{item_id}.wav", dtype="float32")
    if y.ndim > 1:
        y = y.mean(axis=1)
    if sr != RATE:
        y, sr = soxr.resample(y, sr, RATE, quality="HQ"), RATE
    phones = read_lab(root / "segments" / f"{item_id}.lab")
    syls = syllabify(phones)
    if not syls:
        return ""
    w = analyze(y, sr)
    rng = np.random.default_rng([seed, index, 14])
    first_onset = sum(phones[i][1] - phones[i][0] for i in syls[0].onset)
    notes = melody(rng, len(syls), w.median_f0, start=0.2 + first_onset, register=register)
    expr = Expression(seed=int(rng.integers(1 << 31)))
    out, sung_phones, f0 = retime(y, sr, phones, notes, expr, syls, w)
    peak = np.abs(out).max()
    if peak > 0.99:
        out = out * (0.99 / peak)
    (root / "notes" / f"{sid}.json").write_text(json.dumps([asdict(n) for n in notes]))
    tmp = root / "f0" / f".{sid}.tmp.npy"
    np.save(tmp, to_hop(f0, out.size))
    os.replace(tmp, root / "f0" / f"{sid}.npy")
    write_lab(root / "segments" / f"{sid}.lab", sung_phones)
    tmp = root / "wavs" / f".{sid}.tmp.wav"
    sf.write(tmp, out, RATE, subtype="PCM_16")
    os.replace(tmp, root / "wavs" / f"{sid}.wav")  # last: the wav marks the item done
    return sid


def _is_done(root: Path, sid: str) -> bool:
    return all(
        (root / d / f"{sid}{ext}").exists()
        for d, ext in (("wavs", ".wav"), ("segments", ".lab"), ("f0", ".npy"))
    )


def make_sung(
    corpus_dir: Path,
    k: int,
    seed: int = 0,
    jobs: int | None = None,
    progress: bool = True,
    register: tuple[float, float] | None = None,
) -> dict:
    """Sing ``k`` of the directory's items (chosen by ``seed``; a larger ``k`` with the same
    seed keeps the smaller one's) onto generated melodies; resumes; rewrites metadata.csv
    with the sung rows after their sources; items made earlier are kept as they are, so a
    larger ``k`` with another ``register`` adds copies in that register. Returns ``{"items",
    "seed", "failed", "register"}``."""
    from tqdm import tqdm

    root = Path(corpus_dir)
    rows = [
        line.split("|")
        for line in (root / "metadata.csv").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    sources = [
        r for r in rows
        if not r[0].endswith(SUFFIX) and "_ps" not in r[0]
        and (root / "segments" / f"{r[0]}.lab").exists()
    ]  # fmt: skip
    order = np.random.default_rng([seed, 14]).permutation(len(sources))
    chosen = sorted(order[: min(k, len(sources))].tolist())
    for sub in ("f0", "notes", "segments", "wavs"):
        (root / sub).mkdir(exist_ok=True)
    reg = tuple(register) if register is not None else None
    work = [(root, sources[i][0], seed, i, reg) for i in chosen]
    jobs = jobs or os.cpu_count() or 1
    done: dict[str, str] = {}
    failed: dict[str, str] = {}
    bar = tqdm(total=len(work), desc="sung", unit="utt", disable=not progress)
    if jobs > 1 and len(work) >= 8:
        with ProcessPoolExecutor(jobs) as pool:
            futs = {pool.submit(_sing_item, a): a[1] for a in work}
            for f, item_id in futs.items():
                try:
                    done[item_id] = f.result()
                except Exception as e:
                    failed[item_id] = f"{type(e).__name__}: {e}"
                bar.update(1)
    else:
        for a in work:
            try:
                done[a[1]] = _sing_item(a)
            except Exception as e:
                failed[a[1]] = f"{type(e).__name__}: {e}"
            bar.update(1)
    bar.close()
    out_rows = []
    for r in rows:
        if r[0].endswith(SUFFIX):
            continue
        out_rows.append(r)
        if done.get(r[0]):
            out_rows.append([done[r[0]], *r[1:]])
    text = "".join("|".join(r) + "\n" for r in out_rows)
    tmp = root / ".metadata.csv.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, root / "metadata.csv")
    return {"items": sum(1 for v in done.values() if v), "seed": seed, "failed": failed,
            "register": list(reg) if reg else None}  # fmt: skip


def festival_phones(text: str) -> tuple[np.ndarray, int, list[tuple[float, float, str]]]:
    """Festival (the teacher voice) speaking ``text``: (audio at 22050 Hz, sr, phone times)."""
    import tempfile

    import soundfile as sf

    from model.text_norm import normalize
    from trainer import corpus

    with tempfile.TemporaryDirectory(prefix="melgand-sung-") as tmp:
        out = Path(tmp)
        for sub in ("wavs", "segments"):
            (out / sub).mkdir()
        ((_, err),) = corpus._synth_batch([corpus.Item("utt", text, normalize(text))], out)
        if err:
            raise RuntimeError(err)
        y, sr = sf.read(out / "wavs" / "utt.wav", dtype="float32")
        return y, sr, read_lab(out / "segments" / "utt.lab")
