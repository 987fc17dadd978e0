"""Shared names as people wrote them, without news-agency tags, for the story browser and the report.

The verifier compares names folded (lower case, accents removed: "Lâm" and "Lam" are one
name, ``"lam"``). A page shows each shared name as the articles wrote it: the first form
in the first article, and the second article's form beside it when it differs ("Lâm / Lam").

Wire-agency tags ("VNA", "AFP", "Reuters", "Xinhua") sit in datelines and credits of
unrelated stories, so two reports sharing one says nothing: :func:`is_agency_tag` tells them
apart, and the pages list them apart from the names.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["AGENCY_TAGS", "fold", "is_agency_tag", "shown_names", "surface_forms"]

#: News agencies whose name or tag heads or ends a wire story, folded (lower case, no accents).
AGENCY_TAGS = frozenset(
    {
        "aa", "aap", "afp", "akp", "ana", "ani", "anp", "ansa", "antara", "ap", "apa", "aps", "bernama", "belga", "bss",
        "bta", "cna", "ctk", "dpa", "efe", "epa", "ians", "irna", "kpl", "kuna", "kyodo", "lusa", "map", "mena", "mna",
        "mti", "nna", "ntb", "pap", "pna", "pti", "qna", "reuters", "ritzau", "sda", "spa", "stt", "tap", "tass",
        "ttxvn", "upi", "vna", "vov", "wafa", "xinhua", "yonhap",
    }
)  # fmt: skip

_WORD = re.compile(r"\b[^\W\d_][^\W_]*(?:[-'’][^\W\d_][^\W_]*)*", re.UNICODE)


def fold(word: str) -> str:
    """``word`` as the verifier compares names: lower case, accents removed ("Đà Nẵng" -> "da nang")."""
    decomposed = unicodedata.normalize("NFKD", word.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def is_agency_tag(name: str) -> bool:
    """Whether ``name`` (as written, or folded) is a news agency's tag rather than a name in the story.

    Examples:
        >>> [is_agency_tag(n) for n in ("VNA", "vna", "Reuters", "Lâm", "NATO")]
        [True, True, True, False, False]

    """
    return fold(name) in AGENCY_TAGS


def surface_forms(texts: Iterable[str]) -> dict[str, str]:
    """Folded word -> its first capitalised form in ``texts`` (a lower-case form only when no other)."""
    forms: dict[str, str] = {}
    for text in texts:
        for match in _WORD.finditer(text):
            word = match.group(0)
            key = fold(word)
            if key not in forms or (not forms[key][0].isupper() and word[0].isupper()):
                forms[key] = word
    return forms


def shown_names(shared: Sequence[str], a_texts: Iterable[str], b_texts: Iterable[str]) -> dict[str, Any]:
    """The shared names of a pair for display: ``{"names": [...], "agencies": [...]}``.

    Args:
        shared: The verifier's shared names, folded.
        a_texts: The first article's passages (title first).
        b_texts: The second article's.

    Each name is written as in the first article, then ``" / "`` and the second article's form
    when it differs; a name found in neither stays as given. Agency tags go to ``agencies``.

    """
    a_forms, b_forms = surface_forms(a_texts), surface_forms(b_texts)
    names: list[str] = []
    agencies: list[str] = []
    for key in shared:
        a_form = a_forms.get(key) or b_forms.get(key) or key
        b_form = b_forms.get(key) or a_form
        shown = a_form if a_form == b_form else f"{a_form} / {b_form}"
        (agencies if is_agency_tag(key) else names).append(shown)
    return {"names": names, "agencies": agencies}
