"""English sentences for the teacher corpus, generated from a seed, chosen for coverage.

No copied text: a small grammar with many sentence shapes (statements, questions,
commands, exclamations, clauses, lists) fills its slots from a vocabulary of ~20,000 common
words (``wordfreq`` ranks, ``lemminflect`` parts of speech and inflections, kept only when
the lexicon can say them). From a pool four times larger than asked, sentences are picked
greedily for the phone pairs (diphones) and words they add, so a small corpus covers the
phone set and its transitions well.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass
from functools import lru_cache

from model import g2p
from model.frontend import Frontend

GENERATOR_VERSION = 1
_BLOCK = {
    "fuck",
    "fucking",
    "shit",
    "bitch",
    "cunt",
    "nigger",
    "nigga",
    "faggot",
    "fag",
    "retard",
    "whore",
    "slut",
    "dick",
    "pussy",
    "cock",
    "porn",
    "sex",
    "rape",
    "nazi",
    "rapist",
    "hooker",
    "sissy",
    "leper",
    "homosexual",
    "gay",
    "damn",
    "kill",
    "murder",
    "suicide",
    "terrorist",
    "slave",
    "negro",
    "bastard",
    "penis",
    "vagina",
    "breast",
}
MAX_WORDS = 18  # longer candidates are dropped: short utterances train and align better
PRONOUNS_SG = ("he", "she", "it", "someone", "nobody", "everyone")
PRONOUNS_PL = ("we", "they", "you", "people")
DET_SG = ("the", "a", "this", "that", "every", "my", "your", "his", "her", "our", "their", "one")
DET_PL = (
    "the",
    "these",
    "those",
    "some",
    "many",
    "few",
    "my",
    "our",
    "their",
    "two",
    "three",
    "several",
    "all the",
    "most",
)
PREPS = (
    "in",
    "on",
    "under",
    "behind",
    "near",
    "with",
    "without",
    "across",
    "through",
    "over",
    "before",
    "after",
    "beside",
    "inside",
    "around",
    "toward",
    "from",
    "between",
    "beyond",
)
CONJ = ("and", "but", "so", "yet", "or", "because", "while", "although", "until", "since")
SUB = ("when", "because", "if", "although", "before", "after", "while", "as soon as", "unless")
WH = ("where", "why", "when", "how", "what")
ADV_INTRO = (
    "yesterday",
    "today",
    "tomorrow",
    "suddenly",
    "meanwhile",
    "later",
    "finally",
    "at first",
    "by noon",
    "last winter",
    "in the morning",
    "every evening",
    "often",
)
SAY = ("said", "thought", "believed", "noticed", "wrote", "whispered", "explained", "insisted")
NUMBERS = (
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "twenty",
    "forty",
    "a hundred",
    "a thousand",
)


@dataclass(frozen=True)
class Vocab:
    nouns: tuple[tuple[str, str], ...]  # (singular, plural)
    verbs: tuple[tuple[str, str, str, str, str], ...]  # VB, VBZ, VBD, VBG, VBN
    adjs: tuple[str, ...]
    advs: tuple[str, ...]


@lru_cache(maxsize=1)
def vocabulary(size: int = 20000) -> Vocab:
    """Content words by frequency rank, with their inflections, that the lexicon knows."""
    import lemminflect
    import wordfreq

    lex = g2p.lexicon()
    ok = lambda w: w.isalpha() and w in lex and w not in _BLOCK  # noqa: E731
    nouns, verbs, adjs, advs = [], [], [], []
    for w in wordfreq.top_n_list("en", size * 2):
        if len(w) < 3 or not ok(w):
            continue
        lemmas = lemminflect.getAllLemmas(w)
        if lemmas.get("NOUN", ("",))[0] == w:
            pl = (lemminflect.getInflection(w, "NNS") or ("",))[0]
            if ok(pl):
                nouns.append((w, pl))
        if lemmas.get("VERB", ("",))[0] == w:
            forms = [w] + [
                (lemminflect.getInflection(w, t) or ("",))[0] for t in ("VBZ", "VBD", "VBG", "VBN")
            ]
            if all(ok(f) for f in forms):
                verbs.append(tuple(forms))
        if lemmas.get("ADJ", ("",))[0] == w:
            adjs.append(w)
        if lemmas.get("ADV", ("",))[0] == w and w.endswith("ly"):
            advs.append(w)
    return Vocab(tuple(nouns), tuple(verbs), tuple(adjs), tuple(advs))  # type: ignore[arg-type]


class Grammar:
    """Random sentences; words drawn with probability ~ rank^-0.6 (common, but varied)."""

    def __init__(self, rng: random.Random, vocab: Vocab):
        self.r = rng
        self.v = vocab

    def pick(self, seq):
        n = len(seq)
        return seq[min(int(n * self.r.random() ** 2.5), n - 1)]

    def any(self, seq):
        return self.r.choice(seq)

    def np(self, plural: bool | None = None, allow_pronoun: bool = True) -> tuple[str, bool]:
        plural = self.r.random() < 0.4 if plural is None else plural
        r = self.r.random()
        if allow_pronoun and r < 0.15:
            return self.any(PRONOUNS_PL if plural else PRONOUNS_SG), plural
        sg, pl = self.pick(self.v.nouns)
        det = self.any(DET_PL if plural else DET_SG)
        if det == "a" and g2p.is_vowel(g2p.word_phones(sg)[0]):
            det = "an"
        words = [det]
        if self.r.random() < 0.5:
            words.append(self.pick(self.v.adjs))
            if self.r.random() < 0.15:
                words += ["and", self.pick(self.v.adjs)]
        if plural and det in ("the", "some") and self.r.random() < 0.2:
            words[0] = self.any(NUMBERS)
        words.append(pl if plural else sg)
        if self.r.random() < 0.1:
            words += [self.any(PREPS), self.np(allow_pronoun=False)[0]]
        return " ".join(words), plural

    def obj(self) -> str:
        np, _ = self.np()
        return {"he": "him", "she": "her", "we": "us", "they": "them"}.get(np, np)

    def vp(self, plural: bool) -> str:
        vb, vbz, vbd, vbg, vbn = self.pick(self.v.verbs)
        tense = self.r.random()
        if tense < 0.35:
            verb = vbd
        elif tense < 0.55:
            verb = vb if plural else vbz
        elif tense < 0.7:
            verb = f"will {vb}"
        elif tense < 0.8:
            verb = f"{'have' if plural else 'has'} {vbn}"
        elif tense < 0.9:
            verb = f"{'were' if plural else 'was'} {vbg}"
        else:
            verb = f"{self.any(('could', 'should', 'might', 'must', 'would'))} {vb}"
        words = [verb]
        if self.r.random() < 0.7:
            words.append(self.obj())
        if self.r.random() < 0.3 and self.v.advs:
            words.append(self.pick(self.v.advs))
        if self.r.random() < 0.2:
            words += [self.any(PREPS), self.np(allow_pronoun=False)[0]]
        return " ".join(words)

    def clause(self) -> str:
        subj, plural = self.np()
        return f"{subj} {self.vp(plural)}"

    def sentence(self) -> str:
        shape = self.r.random()
        if shape < 0.25:
            s, end = self.clause(), "."
        elif shape < 0.37:
            s, end = f"{self.clause()}, {self.any(CONJ)} {self.clause()}", "."
        elif shape < 0.47:
            s, end = f"{self.any(SUB)} {self.clause()}, {self.clause()}", "."
        elif shape < 0.55:
            s, end = f"{self.any(ADV_INTRO)}, {self.clause()}", "."
        elif shape < 0.63:
            subj, plural = self.np()
            vb = self.pick(self.v.verbs)[0]
            aux = self.any(("did", "will", "can", "should") + (("do",) if plural else ("does",)))
            s, end = f"{aux} {subj} {vb} {self.obj()}", "?"
        elif shape < 0.71:
            subj, plural = self.np()
            vb = self.pick(self.v.verbs)[0]
            s, end = (
                f"{self.any(WH)} {self.any(('did', 'will', 'would', 'could'))} {subj} {vb}",
                "?",
            )
        elif shape < 0.78:
            vb = self.pick(self.v.verbs)[0]
            s, end = f"{vb} {self.obj()} {self.any(PREPS)} {self.np(allow_pronoun=False)[0]}", "!"
        elif shape < 0.83:
            sg, _ = self.pick(self.v.nouns)
            adj = self.pick(self.v.adjs)
            art = "an" if g2p.is_vowel(g2p.word_phones(adj)[0]) else "a"
            s, end = f"what {art} {adj} {sg} that was", "!"
        elif shape < 0.89:
            np, plural = self.np(allow_pronoun=False)
            s = f"there {'were' if plural else 'was'} {np} {self.any(PREPS)} {self.np()[0]}"
            end = "."
        elif shape < 0.95:
            subj, plural = self.np()
            cop = self.any(
                ("are", "were", "seem", "became") if plural else ("is", "was", "seems", "became")
            )
            s = f"{subj} {cop} {self.pick(self.v.adjs)}"
            end = "." if self.r.random() < 0.7 else f" and {self.pick(self.v.adjs)}."
        else:
            subj, _ = self.np()
            s, end = f"{subj} {self.any(SAY)} that {self.clause()}", "."
        return s[0].upper() + s[1:] + end


def diphones(units: list[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(units))


@dataclass
class Selection:
    sentences: list[str]
    units: list[list[str]]
    coverage: dict[str, float]


def generate(n: int, seed: int, pool_factor: int = 4) -> Selection:
    """``n`` sentences from ``seed``, picked greedily from ``pool_factor * n`` candidates for
    new diphones (weight 1) and new words (weight 0.5) per square root of their length.
    Deterministic for (n, seed)."""
    if n < 1:
        raise ValueError(f"need at least one sentence, got {n}")
    rng = random.Random(f"melgand-corpus-{GENERATOR_VERSION}-{seed}")
    gram = Grammar(rng, vocabulary())
    fe = Frontend()
    pool, seen = [], set()
    while len(pool) < pool_factor * n:
        s = gram.sentence()
        if s not in seen and len(s.split()) <= MAX_WORDS:
            seen.add(s)
            pool.append((s, fe.units(s), {w.lower() for w in s[:-1].replace(",", "").split()}))
    covered: set[tuple[str, str]] = set()
    words: set[str] = set()

    def gain(i: int) -> float:  # per square root of length: favours dense, not long
        new = len(diphones(pool[i][1]) - covered) + 0.5 * len(pool[i][2] - words)
        return new / len(pool[i][1]) ** 0.5

    heap = [(-gain(i), i) for i in range(len(pool))]
    heapq.heapify(heap)
    chosen: list[int] = []
    while len(chosen) < n and heap:
        _g, i = heapq.heappop(heap)
        g_now = gain(i)
        if heap and -g_now > heap[0][0]:  # stale: gains only shrink; re-queue (lazy greedy)
            heapq.heappush(heap, (-g_now, i))
            continue
        chosen.append(i)
        covered |= diphones(pool[i][1])
        words |= pool[i][2]
    all_di = set().union(*(diphones(u) for _, u, _ in pool))
    phones = {p for i in chosen for p in pool[i][1]}
    coverage = {
        "phones": len(phones & set(g2p.PHONES)) / len(g2p.PHONES),
        "diphones": len(covered),
        "diphones_of_pool": len(covered) / max(len(all_di), 1),
        "distinct_words": len(words),
    }
    return Selection([pool[i][0] for i in chosen], [pool[i][1] for i in chosen], coverage)
