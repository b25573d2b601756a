"""Where sung phones go on the notes: the timing shared by the corpus's WORLD re-timing
(:mod:`trainer.sung`) and the daemon's sung phrases (:class:`daemon.synth.Phrase`).

A note is a syllable: its onset consonants end on the beat at their spoken length (shortened
only where they would run into the previous note's vowel), the vowel lasts to the note's end
less the coda, and the coda ends at note-off (or where the next note's onset begins,
legato). A melisma (one syllable over several notes) holds the vowel. Times in seconds;
phones ``(start, end, name)`` as spoken, Festival's radio phone names (:mod:`model.g2p`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from model.g2p import is_vowel

SILENCES = frozenset({"pau", "sil", "sp", "spn", "h#", ""})
LAX = frozenset({"ih", "eh", "ae", "uh", "ah"})  # cannot end a syllable: keep a coda

# consonant clusters allowed to begin an English syllable (maximal onset splits the rest)
_ONSET2 = (
    {
        (a, b)
        for a in ("p", "b", "t", "d", "k", "g", "f", "th", "sh", "s")
        for b in ("l", "r", "w", "y")
    }
    | {("s", c) for c in ("p", "t", "k", "m", "n", "f")}
    | {("v", "y"), ("hh", "y"), ("m", "y")}
)
_ONSET3 = {("s", a, b) for a in ("p", "t", "k") for b in ("l", "r", "w", "y")}


@dataclass(frozen=True)
class Note:
    """``start``/``dur`` seconds on the output timeline, ``pitch`` MIDI (float), ``syllable``
    the index of the syllable sung (consecutive notes of one syllable: a melisma)."""

    start: float
    dur: float
    pitch: float
    syllable: int

    @property
    def end(self) -> float:
        return self.start + self.dur


@dataclass(frozen=True)
class Syllable:
    onset: tuple[int, ...]  # indices into the phone list
    vowel: int
    coda: tuple[int, ...]


def syllabify(phones: list[tuple[float, float, str]]) -> list[Syllable]:
    """Syllables by vowel nuclei; consonants between two vowels go to the next syllable's
    onset as far as English allows (maximal onset), the rest to the coda; a silence splits."""
    names = [p[2] for p in phones]
    vowels = [i for i, n in enumerate(names) if is_vowel(n)]
    if not vowels:
        return []
    cons = lambda a, b: [i for i in range(a, b) if names[i] not in SILENCES]  # noqa: E731
    onsets = {vowels[0]: cons(0, vowels[0])}
    codas = {vowels[-1]: cons(vowels[-1] + 1, len(names))}
    for v, w in itertools.pairwise(vowels):
        between = list(range(v + 1, w))
        sil = [i for i in between if names[i] in SILENCES]
        if sil:  # a pause: before it coda, after it onset
            codas[v], onsets[w] = cons(v + 1, sil[0]), cons(sil[-1] + 1, w)
            continue
        cl = [names[i] for i in between]
        k = 0  # onset = cl[k:]
        if len(cl) >= 3 and tuple(cl[-3:]) in _ONSET3:
            k = len(cl) - 3
        elif len(cl) >= 2 and tuple(cl[-2:]) in _ONSET2:
            k = len(cl) - 2
        elif cl:
            k = len(cl) - 1 if cl[-1] != "ng" else len(cl)
        if k == 0 and cl and names[v] in LAX:  # "is on": ih z | aa n
            k = 1
        codas[v], onsets[w] = between[:k], between[k:]
    return [Syllable(tuple(onsets[v]), v, tuple(codas[v])) for v in vowels]


def _vowel_floor(note: float, min_vowel: float) -> float:
    """The least vowel a note keeps: ``min_vowel`` of its length (a fraction), at least
    60 ms, and never more than 90 % of the note; consonants give way to it."""
    return min(0.9 * note, max(0.06, min_vowel * note))


def layout(phones, syls: list[Syllable], notes: list[Note], min_vowel: float):
    """Output segments ``(t0, t1, phone index, is_vowel)`` and each syllable's pitch-change
    time; see the module docstring for the rules."""
    groups: list[list[Note]] = []
    for n in notes:
        if groups and groups[-1][0].syllable == n.syllable:
            groups[-1].append(n)
        else:
            groups.append([n])
    if [g[0].syllable for g in groups] != list(range(len(syls))):
        raise ValueError(
            f"the notes must sing syllables 0..{len(syls) - 1} in order, each once (melismas: "
            f"consecutive notes); got {[g[0].syllable for g in groups]}"
        )
    spoken = lambda idx: sum(phones[i][1] - phones[i][0] for i in idx)  # noqa: E731
    beats = [g[0].start for g in groups]
    ends = [g[-1].end for g in groups]
    on_len = [spoken(s.onset) for s in syls]
    co_len = [spoken(s.coda) for s in syls]
    on_scale = [1.0] * len(syls)
    co_scale = [1.0] * len(syls)
    for k in range(len(syls)):
        if k == 0:
            room = beats[0]
            if on_len[0] > room:
                on_scale[0] = room / on_len[0]
            continue
        floor = beats[k - 1] + _vowel_floor(ends[k - 1] - beats[k - 1], min_vowel)
        o, c = on_len[k], co_len[k - 1]
        if ends[k - 1] <= beats[k] - o:  # a rest at least as long as the onset
            if ends[k - 1] - c < floor:
                co_scale[k - 1] = max(0.0, ends[k - 1] - floor) / c
        elif o + c > beats[k] - floor:
            on_scale[k] = co_scale[k - 1] = max(0.0, beats[k] - floor) / max(o + c, 1e-9)
    last = len(syls) - 1
    floor = beats[last] + _vowel_floor(ends[last] - beats[last], min_vowel)
    if co_len[last] > ends[last] - floor:
        co_scale[last] = max(0.0, ends[last] - floor) / co_len[last]
    segs, changes = [], []
    for k, s in enumerate(syls):
        o0 = beats[k] - on_len[k] * on_scale[k]
        nxt = beats[k + 1] - on_len[k + 1] * on_scale[k + 1] if k < last else np.inf
        c1 = min(ends[k], nxt)
        c0 = c1 - co_len[k] * co_scale[k]
        t = o0
        for i in s.onset:
            d = (phones[i][1] - phones[i][0]) * on_scale[k]
            segs.append((t, t + d, i, False))
            t += d
        segs.append((beats[k], c0, s.vowel, True))
        t = c0
        for i in s.coda:
            d = (phones[i][1] - phones[i][0]) * co_scale[k]
            segs.append((t, t + d, i, False))
            t += d
        changes.append(o0)
    return segs, changes, groups


def note_changes(groups: list[list[Note]], syl_changes: list[float]) -> list[float]:
    """Each note's pitch-change time: a syllable's first note at its onset, a melisma note
    on its beat."""
    out = []
    for g, c in zip(groups, syl_changes, strict=True):
        out += [c] + [n.start for n in g[1:]]
    return out
