"""Text frontend: normalization, G2P in Festival's phones, character mode, lyrics."""

from __future__ import annotations

import difflib

import pytest

from model import g2p
from model.frontend import Frontend, lyric_phones
from model.text_norm import normalize
from trainer.corpus import read_segments


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Dr. Smith paid $5.50.", "Doctor Smith paid five dollars and fifty cents."),
        ("It's 3:15 pm", "It's three fifteen p m"),
        ("at 10:00", "at ten o'clock"),
        ("at 7:05 a.m. sharp", "at seven oh five a m sharp"),
        ("on the 21st and the 2nd", "on the twenty-first and the second"),
        ("in 1999 and 2024", "in nineteen ninety-nine and twenty twenty-four"),
        ("1,234 people", "one thousand two hundred and thirty-four people"),
        ("12.5% more", "twelve point five percent more"),
        ("$3 million", "three million dollars"),
        ("£1.01", "one pound and one penny"),
        ("$0.99", "ninety-nine cents"),
        ("5 kg. of rice", "five kilograms of rice"),
        ("call 007", "call oh oh seven"),
        ("St. Louis on Main St.", "Saint Louis on Main Street."),
        ("Mr. and Mrs. Jones vs. me", "Mister and Missus Jones versus me"),
        ("No. 5 is no good", "Number five is no good"),
        ("salt & pepper", "salt and pepper"),
        ("\u201cquoted\u201d \u2013 dash", "quoted, dash"),
    ],
)
def test_normalization(text, spoken):
    assert normalize(text) == spoken


def test_lexicon_words_use_festivals_phones():
    assert g2p.word_phones("the") == ("dh", "ax")  # unstressed AH is ax, as Festival writes it
    assert g2p.word_phones("water") == ("w", "ao", "t", "er")
    assert g2p.word_phones("brown-smith") == g2p.word_phones("brown") + g2p.word_phones("smith")


@pytest.mark.parametrize("word", ["melgand", "blorptastic", "xqz", "fbi", "zzz", "qwertyuiop"])
def test_unknown_words_still_get_phones(word):
    phones = g2p.word_phones(word)
    assert phones and set(phones) <= set(g2p.PHONES)


def test_acronyms_are_spelled():
    assert g2p.word_phones("fbi") == ("eh", "f", "b", "iy", "ay")


def test_phone_units_have_pauses_at_phrase_breaks():
    units = Frontend().units("Hello, world. Again")
    assert units == [
        "pau",
        "hh",
        "ax",
        "l",
        "ow",
        "pau",
        "w",
        "er",
        "l",
        "d",
        "pau",
        "ax",
        "g",
        "eh",
        "n",
        "pau",
    ]
    fe = Frontend()
    ids = fe.encode("Hi there.")
    assert [fe.symbols[i] for i in ids] == fe.units("Hi there.")
    assert 0 not in ids  # 0 is padding


def test_frontend_matches_the_teacher(tiny_corpus):
    """Our phones against Festival's own segments for the same sentences."""
    fe = Frontend()
    same = total = 0
    for line in (tiny_corpus / "metadata.csv").read_text().splitlines():
        item, _, norm = line.split("|")
        fest = [p for _, _, p in read_segments(tiny_corpus / "segments" / f"{item}.lab")]
        ours = fe.units(norm)
        blocks = difflib.SequenceMatcher(a=fest, b=ours, autojunk=False).get_matching_blocks()
        same += sum(b.size for b in blocks)
        total += len(fest)
    assert same / total > 0.95  # measured 0.974: Festival adds prosodic pauses we do not


def test_character_mode():
    fe = Frontend.for_texts(["Hallo Welt!", "Grüße,  Freunde"])
    assert fe.mode == "char" and fe.symbols[0] == "<pad>"
    assert "ü" in fe.symbols and "W" not in fe.symbols  # lowercased
    ids = fe.encode("hallo  welt!")
    assert "".join(fe.symbols[i] for i in ids) == "hallo welt!"
    with pytest.raises(ValueError, match=r"characters \['z'\] are not in this voice's alphabet"):
        fe.encode("zoo")
    assert Frontend.from_dict(fe.to_dict()).symbols == fe.symbols
    with pytest.raises(ValueError, match="needs its alphabet"):
        Frontend("char")


def test_lyrics_split_words_over_notes():
    notes = lyric_phones(["hel-", "lo", "_", "a-", "ma-", "zing", "grace"])
    assert notes == [
        ["hh", "ax"],
        ["l", "ow"],
        [],
        ["ax"],
        ["m", "ey"],
        ["z", "ih", "ng"],
        ["g", "r", "ey", "s"],
    ]
    # every phone of the word is sung once, in order
    assert [p for note in notes[3:6] for p in note] == list(g2p.word_phones("amazing"))


def test_lyrics_with_more_notes_than_vowels_hold_the_vowel():
    assert lyric_phones(["lo-", "-", "ve"]) == [["l", "ah", "v"], [], []]
