"""Cleaning and translating PTB-XL's machine-generated ECG reports.

PTB-XL's reports come from the ECG carts that recorded them: 71 % German, 28 % English, 1 %
Swedish, with the damage of several format conversions.  :func:`clean_report` repairs them and
translates the German and Swedish ones to English with a phrase table: the carts print
statements from a small, fixed vocabulary (``sinusrhythmus``, ``lagetyp normal``,
``linksanteriorer hemiblock`` ...), so a table of those statements, with a word table behind it
for the free text clinicians typed, translates them deterministically and reproducibly, with
no language model and no network.  The tables are data: ``report_vocabulary.json`` beside this
file (``statements``, ``qualifiers``, ``words``: source phrase -> English; ``swedish_words``).
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

__all__ = ["clean_report", "report_language", "machine_report"]

# MIMIC-IV-ECG's data-quality banners ("--- Warning: Data quality may affect interpretation ---",
# "*** Poor data quality, interpretation may be adversely affected"): a flag, not report text.
_BANNER = re.compile(r"^\s*(\*\*\*|---)|(\*\*\*|---)\s*$")


def clean_report(text: str, translate: bool = True) -> str:
    """A machine report, cleaned and (with `translate`) in English.

    Cleaning repairs the encoding damage (upper-case ``Ä Ö Ü Å`` inside lower-case words, ``#``
    standing for ``ü``), drops the device stamp (a software version such as ``4.46`` followed by
    ``unbestätigter bericht``, "unconfirmed report", often cut short), annotators' ``Edit:``
    notes and stray runs of spaces, and lower-cases the text.  Translation maps German and
    Swedish statements to the wording of PTB-XL's English reports, one sentence per statement
    (``"sinusrhythmus lagetyp normal normales ekg"`` becomes
    ``"sinus rhythm. normal axis. normal ecg."``); English reports are only cleaned.

    Raises TypeError for anything but a string (NaN from a missing CSV field included).
    """
    if not isinstance(text, str):
        raise TypeError(f"report must be a str, got {type(text).__name__}")
    text = _repair(text)
    if translate:
        language = report_language(text)
        if language != "en":
            text = _translate(text)
    return text


def machine_report(lines) -> tuple:
    """A report from the statement lines a cart printed (MIMIC-IV-ECG's ``report_0`` ...
    ``report_17``), as the field cleans them: empty cells (None, NaN, blank) dropped, data-quality
    banners (lines opening or closing with ``***`` or ``---``) removed from the text but
    returned as a flag, ``EKG`` written ``ECG``, whitespace normalised, each statement one
    sentence.  Returns ``(text, quality_flag)``; the text is ``""`` when no statement is left.
    """
    sentences, flagged = [], False
    for line in lines:
        if not isinstance(line, str) or not line.strip():
            continue
        if _BANNER.search(line):
            flagged = True
            continue
        line = re.sub(r"\bEKG\b", "ECG", " ".join(line.split()), flags=re.IGNORECASE)
        sentences.append(line if line.endswith((".", "!", "?")) else line + ".")
    return " ".join(sentences), flagged


def report_language(text: str) -> str:
    """``"de"``, ``"sv"`` or ``"en"``: the language whose report vocabulary `text` uses most
    (English when it uses neither German nor Swedish statement words)."""
    tokens = [_fold(t) for t in _TOKEN.findall(text.lower())]
    german = sum(t in _GERMAN_MARKERS for t in tokens)
    swedish = sum(t in _SWEDISH_MARKERS for t in tokens)
    if not german and not swedish:
        return "en"
    return "de" if german >= swedish else "sv"


# ---------------------------------------------------------------------------------------------
# Repair
# ---------------------------------------------------------------------------------------------

_DAMAGED_UMLAUT = re.compile(r"(?<=[a-zäöüå])[ÄÖÜÅ]|[ÄÖÜÅ](?=[a-zäöüå])")
_EDIT_NOTE = re.compile(r"\bedit\s*:.*$", re.IGNORECASE | re.DOTALL)
# The cart's stamp: a version number, then "unbestätigter bericht" cut anywhere; or the phrase
# on its own (also cut) at the end.
_STAMP = re.compile(r"\s\d\.\d{1,2}\s.*$|\s\d\.\d{1,2}$|\s+unbest\S*(\s+\S*)?$")
_UNCONFIRMED = re.compile(r"\bunbestätigter bericht\b")


def _repair(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = _EDIT_NOTE.sub("", text)
    text = _DAMAGED_UMLAUT.sub(lambda m: m.group(0).lower(), text)
    text = text.replace("#", "ü").lower()
    text = _UNCONFIRMED.sub(" ", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = _STAMP.sub("", " " + text).strip()
    return text


# ---------------------------------------------------------------------------------------------
# Translation
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[^\s]+")
_MAX_PHRASE = 10


def _fold(token: str) -> str:
    """Case-folded, umlauts written out, edge punctuation off: the key that both 'ü' and 'ue'
    spellings (and 'abnorm,' and 'abnorm') share."""
    token = token.lower().strip(",.;:!")
    # "(hebung)" and "hebung" alike, but "qrs(t)" and "extrasystole(n)" as they are
    if token.startswith("(") and ")" not in token[1:-1]:
        token = token[1:].rstrip(")")
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss"), ("å", "aa"), ("é", "e")):
        token = token.replace(a, b)
    return token


_VOCABULARY = json.loads((Path(__file__).with_name("report_vocabulary.json"))
                         .read_text(encoding="utf-8"))
# Statements: each starts a sentence.  Qualifiers (in _QUALIFIERS) continue the sentence before.
_STATEMENTS = dict(_VOCABULARY["statements"])

def _located_statements() -> dict:
    """'<age> <location> <lesion>' statements, as the carts print them: "inferiorer infarkt",
    "chronischer anteroseptaler infarkt", "hög lateral myokardskada" ..."""
    german_places = {"inferiorer": "inferior", "anteroseptaler": "anteroseptal",
                     "anteriorer": "anterior", "anterolateraler": "anterolateral",
                     "hochlateraler": "high lateral", "lateraler": "lateral",
                     "inferolateraler": "inferolateral", "posteriorer": "posterior",
                     "septaler": "septal", "anteriorer inferiorer": "anterior and inferior"}
    german_lesions = {"infarkt": "infarction", "myokardschaden": "myocardial damage",
                      "innenschichtsschaden": "subendocardial damage"}
    german_ages = {"": "", "chronischer ": "chronic ", "akuter ": "acute ",
                   "subakuter ": "subacute ", "alter ": "old ", "neuer ": "new "}
    swedish_places = {"inferior": "inferior", "anterior": "anterior",
                      "anteroseptal": "anteroseptal", "anterolateral": "anterolateral",
                      "lateral": "lateral", "hög lateral": "high lateral", "septal": "septal",
                      "inferolateral": "inferolateral", "posterior": "posterior"}
    swedish_lesions = {"infarkt": "infarction", "myokardskada": "myocardial damage"}
    swedish_ages = {"": "", "gammal ": "old ", "akut ": "acute "}
    out = {}
    for places, lesions, ages in ((german_places, german_lesions, german_ages),
                                  (swedish_places, swedish_lesions, swedish_ages)):
        for age, age_en in ages.items():
            for place, place_en in places.items():
                for lesion, lesion_en in lesions.items():
                    out[f"{age}{place} {lesion}"] = f"{age_en}{place_en} {lesion_en}"
    return out


_STATEMENTS.update(_located_statements())

# Phrases that qualify the statement before them (no new sentence).
_QUALIFIERS = _VOCABULARY["qualifiers"]

# Single words, for what the tables above do not cover (clinicians' free text, cut statements).
_WORDS = _VOCABULARY["words"]

# Words that mark a report as German or Swedish (the source vocabularies of the tables).
_SWEDISH_WORDS = set(_VOCABULARY["swedish_words"])


def _keys(table) -> dict:
    return {" ".join(_fold(t) for t in k.split()): v for k, v in table.items()}


_STATEMENT_KEYS = _keys(_STATEMENTS)
_QUALIFIER_KEYS = _keys(_QUALIFIERS)
_WORD_KEYS = _keys(_WORDS)
_SWEDISH_MARKERS = {_fold(w) for w in _SWEDISH_WORDS}
# German markers: the source words of the tables that are not Swedish and never appear in the
# English wording (nor in a few abbreviations English reports share).
_TABLES = (_STATEMENT_KEYS, _QUALIFIER_KEYS, _WORD_KEYS)
_ENGLISH_VOCABULARY = {_fold(w) for table in _TABLES for v in table.values() for w in v.split()}
_GERMAN_MARKERS = (
    {w for table in _TABLES for k in table for w in k.split()}
    - _SWEDISH_MARKERS - _ENGLISH_VOCABULARY
    - {"l", "re", "ll", "ca", "pat", "es", "bsg", "sokolow", "ves", "sves", "lvh", "t", "st",
       "qrs", "lsb", "lah", "lahb", "lll", "slt", "mlt", "llt", "mllt", "g", "v", "i", "ii",
       "iii", "alt", "akut"}
)


def _translate(text: str) -> str:
    tokens = _TOKEN.findall(text)
    folded = [_fold(t) for t in tokens]
    sentences: list[list[str]] = []
    i = 0
    while i < len(tokens):
        for length in range(min(_MAX_PHRASE, len(tokens) - i), 0, -1):
            key = " ".join(folded[i:i + length])
            # a comma after the phrase's last word belongs to the translation too
            comma = "," if tokens[i + length - 1].endswith(",") else ""
            if key in _STATEMENT_KEYS:
                sentences.append([_STATEMENT_KEYS[key] + comma])
                break
            if key in _QUALIFIER_KEYS:
                _continue(sentences, _QUALIFIER_KEYS[key] + comma)
                break
            if length == 1:
                word = _WORD_KEYS.get(key)
                # lead names, numbers and English words pass through as they are
                word = tokens[i].rstrip(";:") if word is None else word + comma
                if word:
                    _continue(sentences, word)
        i += length
    text = ". ".join(" ".join(s).rstrip(",") for s in sentences if s)
    text = re.sub(r"\s+([,.;:])", r"\1", text)
    return (text + ".") if text else text


def _continue(sentences: list, words: str) -> None:
    if sentences:
        sentences[-1].append(words)
    else:
        sentences.append([words])
