"""Text frontend: text -> normalized words -> phone (or character) tokens, and lyrics.

Phone mode (English, the default): :func:`model.text_norm.normalize`, then
:func:`model.g2p.word_phones`, with ``pau`` at the start, the end and each phrase break
(, ; : . ? ! and brackets), as Festival segments speech. Character mode (the seed's
character-level encoder, for datasets in other languages): NFC, lowercase, whitespace
collapsed, one token per character of an alphabet taken from the dataset.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from model import g2p
from model.text_norm import normalize

PAD = "<pad>"
_TOKENS = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*|[,;:.?!()\[\]]")
_BREAKS = set(",;:.?!()[]")
MODES = ("phone", "char")


class Frontend:
    def __init__(self, mode: str = "phone", symbols: Iterable[str] | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown frontend mode {mode!r}; select one of {MODES}")
        self.mode = mode
        if mode == "phone":
            self.symbols = (PAD, *g2p.PHONES)
        else:
            if symbols is None:
                raise ValueError("character mode needs its alphabet: Frontend.for_texts(texts)")
            self.symbols = tuple(symbols)
            if self.symbols[0] != PAD:
                self.symbols = (PAD, *(s for s in self.symbols if s != PAD))
        self._ids = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def for_texts(cls, texts: Iterable[str]) -> Frontend:
        """A character-mode frontend whose alphabet is every character in ``texts``."""
        chars = sorted({c for t in texts for c in clean_chars(t)})
        return cls("char", [PAD, *chars])

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "symbols": list(self.symbols)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Frontend:
        return cls(d["mode"], d["symbols"])

    def units(self, text: str) -> list[str]:
        """The token strings: phones (with ``pau``) or characters."""
        if self.mode == "char":
            return list(clean_chars(text))
        out = [g2p.SILENCE]
        for tok in _TOKENS.findall(normalize(text)):
            if tok in _BREAKS:
                if out[-1] != g2p.SILENCE:
                    out.append(g2p.SILENCE)
            else:
                out.extend(g2p.word_phones(tok.lower()))
        if out[-1] != g2p.SILENCE:
            out.append(g2p.SILENCE)
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids for ``text``; in character mode, an unknown character is refused."""
        units = self.units(text)
        unknown = sorted({u for u in units if u not in self._ids})
        if unknown:
            raise ValueError(
                f"characters {unknown} are not in this voice's alphabet; "
                "remove them or train a voice on text that has them"
            )
        return [self._ids[u] for u in units]

    def encode_units(self, units: Iterable[str]) -> list[int]:
        """Ids for given phone names (e.g. Festival's segments); unknown names are refused."""
        units = list(units)
        bad = sorted({u for u in units if u not in self._ids})
        if bad:
            raise ValueError(f"unknown phones {bad}; this frontend knows {list(self.symbols)}")
        return [self._ids[u] for u in units]


def clean_chars(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text).lower()).strip()


def lyric_phones(syllables: list[str]) -> list[list[str]]:
    """Phones for each note's lyric, one list per note.

    Karaoke conventions: a syllable ending in ``-`` continues the word on the next note
    ("hel-", "lo"); ``_``, ``+`` or ``~`` alone holds the previous vowel (a melisma: an
    empty list). A word's phones are split at its vowels, consonants between two vowels
    going to the next syllable (all but the first of a cluster), so the vowel lands on its
    note.
    """
    out: list[list[str]] = []
    group: list[int] = []
    text = ""
    for i, syl in enumerate([*syllables, ""]):
        s = syl.strip()
        if i == len(syllables) or (not group and s in ("_", "+", "~")):
            if group:
                out.extend(_split_word(text, len(group)))
                group, text = [], ""
            if i < len(syllables):
                out.append([])
            continue
        group.append(i)
        text += s.rstrip("-")
        if not s.endswith("-"):
            out.extend(_split_word(text, len(group)))
            group, text = [], ""
    return out


def _split_word(text: str, k: int) -> list[list[str]]:
    phones = [
        p
        for w in _TOKENS.findall(normalize(text))
        if w not in _BREAKS
        for p in g2p.word_phones(w.lower())
    ]
    vowels = [i for i, p in enumerate(phones) if g2p.is_vowel(p)]
    if k == 1 or not vowels:
        return [phones] + [[] for _ in range(k - 1)]
    cuts = [0]
    for a, b in itertools.pairwise(vowels):
        gap = b - a - 1  # consonants between two nuclei
        cuts.append(a + 1 + (gap - 1 if gap >= 2 else 0))
    cuts.append(len(phones))
    parts = [phones[x:y] for x, y in itertools.pairwise(cuts)]
    while len(parts) < k:  # more notes than vowels: hold the last vowel
        parts.append([])
    return parts
