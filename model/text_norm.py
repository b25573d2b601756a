"""English text normalization: numbers, ordinals, years, times, money, percentages and
abbreviations spelled out as words, so that the G2P and the teacher read the same words.

``normalize("Dr. Smith paid $5.50 at 3:15 pm on the 21st.")`` ->
``"Doctor Smith paid five dollars and fifty cents at three fifteen p m on the twenty-first."``
"""

from __future__ import annotations

import re
import unicodedata


def num2words(n, **kw) -> str:
    """``num2words.num2words``, imported on first use: it loads every language it has
    (tens of ms), which text without digits never needs."""
    from num2words import num2words as n2w

    return n2w(n, **kw)


ABBREVIATIONS = {
    "mr": "mister",
    "mrs": "missus",
    "ms": "miz",
    "dr": "doctor",
    "prof": "professor",
    "sr": "senior",
    "jr": "junior",
    "st": "saint",
    "mt": "mount",
    "ft": "fort",
    "gen": "general",
    "gov": "governor",
    "sgt": "sergeant",
    "capt": "captain",
    "col": "colonel",
    "lt": "lieutenant",
    "rev": "reverend",
    "hon": "honorable",
    "vs": "versus",
    "etc": "et cetera",
    "approx": "approximately",
    "dept": "department",
    "no": "number",
    "jan": "january",
    "feb": "february",
    "mar": "march",
    "apr": "april",
    "jun": "june",
    "jul": "july",
    "aug": "august",
    "sep": "september",
    "sept": "september",
    "oct": "october",
    "nov": "november",
    "dec": "december",
    "mon": "monday",
    "tue": "tuesday",
    "wed": "wednesday",
    "thu": "thursday",
    "fri": "friday",
    "sat": "saturday",
    "sun": "sunday",
    "e.g": "for example",
    "i.e": "that is",
}
UNITS = {
    "km": "kilometers",
    "kg": "kilograms",
    "cm": "centimeters",
    "mm": "millimeters",
    "lb": "pounds",
    "lbs": "pounds",
    "oz": "ounces",
    "hr": "hours",
    "hrs": "hours",
    "min": "minutes",
    "mins": "minutes",
    "sec": "seconds",
    "secs": "seconds",
}
# abbreviations that are ordinary words too: only expanded with their period and a number after
_NEED_NUMBER = {"no", "mar", "jun", "sun", "sat", "wed"}
CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
}

_SPACE = re.compile(r"\s+")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def _num(n: int | float) -> str:
    return num2words(n).replace(",", "")


def _year(n: int) -> str:
    return num2words(n, to="year").replace(",", "")


def _money(m: re.Match) -> str:
    one, many, sub_one, sub_many = CURRENCIES[m.group(1)]
    whole = int(m.group(2).replace(",", ""))
    cents = int((m.group(3) or "0").ljust(2, "0")[:2])
    scale = m.group(4)
    if scale:
        amount = m.group(2) + ("." + m.group(3) if m.group(3) else "")
        return f"{_num(float(amount) if '.' in amount else whole)} {scale.lower()} {many}"
    parts = [f"{_num(whole)} {one if whole == 1 else many}"] if whole or not cents else []
    if cents:
        parts.append(f"{_num(cents)} {sub_one if cents == 1 else sub_many}")
    return " and ".join(parts)


def _time(m: re.Match) -> str:
    h, mins, ampm = int(m.group(1)), int(m.group(2)), m.group(3)
    if h > 24 or mins > 59:
        return m.group(0).replace(":", " ")
    if mins == 0:
        words = f"{_num(h)} o'clock" if not ampm else _num(h)
    elif mins < 10:
        words = f"{_num(h)} oh {_num(mins)}"
    else:
        words = f"{_num(h)} {_num(mins)}"
    if ampm:
        words += " " + " ".join(ampm.lower().replace(".", ""))
    return words


def _number(raw: str) -> str:
    digits = raw.replace(",", "")
    if "." in digits:
        whole, frac = digits.split(".", 1)
        return f"{_num(int(whole or 0))} point {' '.join(_num(int(d)) for d in frac)}"
    n = int(digits)
    if "," not in raw and len(digits) == 4 and 1100 <= n <= 2099 and not digits.startswith("0"):
        return _year(n)
    if len(digits) > 1 and digits.startswith("0"):
        return " ".join("oh" if d == "0" else _num(int(d)) for d in digits)
    return _num(n)


def _abbrev(m: re.Match) -> str:
    word = m.group(1)
    key = word.lower()
    if key in _NEED_NUMBER and not m.group(2):
        return m.group(0)
    out = ABBREVIATIONS[key]
    after = m.group(3) or ""
    if key == "st" and not after.strip()[:1].isupper():
        out = "street"
    out = out.capitalize() if word[0].isupper() else out
    end = "." if m.end() == len(m.string) else ""  # the period also ended the sentence
    return out + (m.group(2) or "") + after + end


_ABBREV_RE = re.compile(
    r"\b("
    + "|".join(re.escape(k) for k in sorted(ABBREVIATIONS, key=len, reverse=True))
    + r")\.(\s*\d)?(\s+\w)?",
    re.IGNORECASE,
)
_RULES: list[tuple[re.Pattern, object]] = [
    (
        re.compile(
            r"([$£€])\s?(\d[\d,]*)(?:\.(\d+))?(?:\s?(thousand|million|billion|trillion))?\b",
            re.IGNORECASE,
        ),
        _money,
    ),
    (re.compile(r"\b(\d{1,2}):(\d{2})\s*([ap]\.?m\.?)?(?=\W|$)", re.IGNORECASE), _time),
    (
        re.compile(r"\b(\d[\d,]*(?:\.\d+)?)\s?(" + "|".join(UNITS) + r")\b(?:\.(?=\s+[a-z]))?"),
        lambda m: _number(m.group(1)) + " " + UNITS[m.group(2)],
    ),
    (
        re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE),
        lambda m: num2words(int(m.group(1)), to="ordinal"),
    ),
    (re.compile(r"(\d[\d,]*(?:\.\d+)?)\s?%"), lambda m: _number(m.group(1)) + " percent"),
    (
        re.compile(r"\b\d{1,3}(?:,\d{3})+(?:\.\d+)?\b|\b\d+(?:\.\d+)?\b"),
        lambda m: _number(m.group(0)),
    ),
    (re.compile(r"\s*&\s*"), lambda m: " and "),
    (re.compile(r"\s*\+\s*"), lambda m: " plus "),
    (re.compile("(?<=\\w)-(?=\\d)|\\s[-\u2013\u2014]+\\s|[\u2013\u2014]"), lambda m: ", "),
]


def normalize(text: str) -> str:
    """Spell out what a reader would say; keep case and sentence punctuation."""
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(_QUOTES)
    text = _ABBREV_RE.sub(_abbrev, text)
    for pattern, fn in _RULES:
        text = pattern.sub(fn, text)  # type: ignore[arg-type]
    text = text.replace('"', "")
    return _SPACE.sub(" ", text).strip()
