"""The label leakage guard: every label name removed from a text before it is embedded.

A title like "Rock the Boat" must not hand the clusterer the genre "Rock", so
:func:`scrub_labels` removes every label name from every text (see its rules).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

# Letters and digits make words; everything else (space, hyphen, apostrophe,
# slash, ampersand, punctuation) separates them.
_ALNUM = r"[^\W_]"
_NOT_ALNUM = r"[\W_]"
# Apostrophes and hyphens glue words into one compound ("rock'n'roll", "Punk-Rock").
_GLUE = r"['\u2019\-]"


@functools.lru_cache(maxsize=64)
def _label_pattern(names: tuple[str, ...]) -> re.Pattern[str] | None:
    alternatives = []
    for name in names:
        words = re.findall(_ALNUM + "+", name)
        if words:
            # Any separators (or none) between the words: "Hip-Hop" also
            # catches "hip hop", "HipHop" and "hip_hop".
            alternatives.append(f"{_NOT_ALNUM}*".join(re.escape(w) for w in words))
    if not alternatives:
        return None
    alternatives.sort(key=len, reverse=True)  # the longest name first: "Hip-Hop" before "Hip"
    core = "|".join(alternatives)
    compound = f"(?:{_ALNUM}+{_GLUE})*(?:{core})(?:{_GLUE}{_ALNUM}+)*"
    return re.compile(f"(?<!{_ALNUM}){compound}(?!{_ALNUM})", re.IGNORECASE)


_EMPTY_BRACKETS = re.compile(r"\(\W*\)|\[\W*\]|\{\W*\}|\"\s*\"|'\s*'|\u2018\s*\u2019|\u201c\s*\u201d")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?)\]}])")
_SPACE_AFTER_OPEN = re.compile(r"([(\[{])\s+")
_REPEATED_SEPARATORS = re.compile(r"(\s*[-/&+|,;:]\s*){2,}")
_EDGE_JUNK = " \t\n\r-/&+|,;:.\u2013\u2014"


def _tidy(text: str) -> str:
    if not re.search(_ALNUM, text):  # only punctuation left ("Rock!!!" -> "!!!"): nothing to say
        return ""
    text = _EMPTY_BRACKETS.sub(" ", text)
    text = " ".join(text.split())
    text = _REPEATED_SEPARATORS.sub(lambda m: f" {m.group(0).strip()[0]} ", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _SPACE_AFTER_OPEN.sub(r"\1", text)
    return " ".join(text.split()).strip(_EDGE_JUNK)


def scrub_labels(text: str, label_names: Sequence[str]) -> str:
    """``text`` without any label name in it, whitespace and stray separators tidied.

    Rules (the leakage guard errs on removing too much):

    * case-insensitive, whole words: a name matches only where it is not
      inside a longer word, so "Rocket" and "Krautrock" stay (removing
      substrings would mangle ordinary words: "Popcorn", "Folksy");
    * a name of several words matches with any separators between them:
      "Hip-Hop" removes "hip hop", "HipHop" and "hip_hop"; "Old-Time /
      Historic" removes "old time historic";
    * the whole compound word around a name goes, apostrophes and hyphens
      being glue: "rock'n'roll", "Punk-Rock", "Rock's" are removed entirely
      for the label "Rock" (each still names the genre);
    * the words of a multi-word name are not removed on their own ("Hop",
      "Historic").
    """
    pattern = _label_pattern(tuple(sorted({str(n) for n in label_names if n is not None and str(n).strip()})))
    removed = 0
    if pattern is not None:
        text, removed = pattern.subn(" ", text)
    # Separators left dangling ("Live - Rock" -> "Live -") are tidied only
    # where something was removed: untouched text keeps its punctuation.
    return _tidy(text) if removed else " ".join(text.split())
