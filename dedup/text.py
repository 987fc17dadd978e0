"""Pure text functions: cleaning boilerplate, splitting into passages, extracting clues.

Nothing here loads a model or touches files. Every function is deterministic.

Cleaning removes what is not the story (photo credits, related-link lines, agency
sign-offs, trailing "see more" blocks of other headlines). The original text is never
modified in place: callers keep it and embed the cleaned copy.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = [
    "CLEANING_VERSION",
    "clean_text",
    "extract_names",
    "extract_numbers",
    "name_key",
    "split_passages",
]

#: Bumped whenever cleaning or splitting changes output; stores record it.
CLEANING_VERSION = 1

# A line that starts a trailing block of other stories' headlines.
_SEE_MORE = re.compile(
    r"^\s*(voir plus|see more|read more|more stories|related( news| stories| articles)?|lire aussi|"
    r"à lire aussi|xem thêm|tin liên quan|leer más|ver más|mehr zum thema|weitere artikel|leggi anche)\s*:?\s*$",
    re.IGNORECASE,
)
# Lines that are links to other stories.
_RELATED_LINK = re.compile(r"^\s*(>>|»|›|→)\s*")
# A line that is only a photo credit, or ends with one: "Photo : VNA/CVN", "Ảnh: TTXVN".
_PHOTO_LINE = re.compile(r"^\s*(photo|ảnh|foto|image|crédit photo|credit|photo credit)\s*:\s*[\w/ .,&-]{0,60}$", re.IGNORECASE)
_PHOTO_TAIL = re.compile(r"\s*(?:ảnh\s*\d+\s*)?(?:[-–—.]\s*)?(photo|ảnh|foto|crédit photo)\s*:\s*[\w/ .&-]{0,40}$", re.IGNORECASE)
# A line that is only an agency sign-off or source tag.
_SIGNOFF_LINE = re.compile(
    r"^\s*[-–—(]?\s*(VNA(/CVN)?|CVN|TTXVN|AFP|AP|Reuters|dpa|ANSA|EFE|Xinhua|source|nguồn|sources?\s*:.*)\s*[)]?\.?\s*$",
    re.IGNORECASE,
)
# An agency sign-off glued to the end of the last sentence: "... ministères.- VNA".
_SIGNOFF_TAIL = re.compile(r"(?<=[.!?»\"”])\s*[-–—]\s*(VNA(/CVN)?|CVN|TTXVN|AFP|Reuters)\s*$")

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+(?=[^\s])")
_WS = re.compile(r"[ \t\u00a0\u2009\u202f]+")


def clean_text(text: str) -> str:
    r"""Remove boilerplate that is not part of the story; keep paragraph breaks.

    Args:
        text: Raw article body.

    Returns:
        The body with one paragraph per line, without photo credits, related-link
        lines, agency sign-offs and a trailing "see more" block.

    Examples:
        >>> clean_text(">> Other story\n\nPhoto : VNA/CVN\n\nThe minister met.\n\nVNA/CVN")
        'The minister met.'
        >>> clean_text("Talks ended.- VNA\n\nsource\n\nVoir plus\n\nUnrelated headline")
        'Talks ended.'

    """
    lines = [_WS.sub(" ", unicodedata.normalize("NFC", line)).strip() for line in text.splitlines()]
    # Cut a trailing "see more" block: from the marker to the end. A marker among the first
    # two non-empty lines is a header, not a tail, and is only dropped itself.
    nonempty = [i for i, line in enumerate(lines) if line]
    for rank, i in enumerate(nonempty):
        if _SEE_MORE.match(lines[i]) and rank >= 2:
            lines = lines[:i]
            break
    kept: list[str] = []
    for line in lines:
        if not line or _RELATED_LINK.match(line) or _PHOTO_LINE.match(line) or _SIGNOFF_LINE.match(line):
            continue
        line = _PHOTO_TAIL.sub("", line)
        line = _SIGNOFF_TAIL.sub("", line).strip()
        if line:
            kept.append(line)
    return "\n".join(kept)


def split_passages(text: str, max_chars: int = 500) -> list[str]:
    r"""Split cleaned text into passages: paragraphs, with long ones cut at sentence ends.

    Every character of ``text`` (but whitespace) lands in exactly one passage, so a long
    article is covered in full, never truncated.

    Args:
        text: Cleaned text, one paragraph per line.
        max_chars: Paragraphs longer than this are split at sentence boundaries; a single
            sentence longer than this is split at word boundaries.

    Returns:
        Passages in reading order.

    Examples:
        >>> split_passages("First para.\nSecond one. It has two sentences.", max_chars=25)
        ['First para.', 'Second one.', 'It has two sentences.']

    """
    if max_chars < 20:
        raise ValueError(f"max_chars must be at least 20, got {max_chars}")
    passages: list[str] = []
    for para in text.splitlines():
        para = para.strip()
        if not para:
            continue
        if len(para) <= max_chars:
            passages.append(para)
            continue
        passages.extend(
            _pack((piece for sentence in _SENTENCE_END.split(para) for piece in _pieces(sentence, max_chars)), max_chars)
        )
    return passages


def _pieces(sentence: str, max_chars: int) -> list[str]:
    """A sentence as pieces of at most ``max_chars``: itself, its words, or character runs."""
    if len(sentence) <= max_chars:
        return [sentence]
    words = sentence.split(" ")
    if len(words) == 1:  # no spaces (e.g. Chinese, Japanese, Thai): cut by characters
        return [sentence[i : i + max_chars] for i in range(0, len(sentence), max_chars)]
    pieces = [w[i : i + max_chars] for w in words if w for i in range(0, len(w), max_chars)]
    return _pack(pieces, max_chars)


def _pack(pieces: Iterable[str], max_chars: int) -> list[str]:
    """Greedily join pieces with spaces into chunks of at most ``max_chars``."""
    out: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 1 + len(piece) > max_chars:
            out.append(current)
            current = piece
        else:
            current = f"{current} {piece}" if current else piece
    if current:
        out.append(current)
    return out


#: Letters that may not touch a number (so "A320" and "3rd" are not numbers); CJK and kana may ("832人", "2020年").
_LETTER = r"[^\W\d_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]"
_NUMBER = re.compile(rf"(?<!{_LETTER})(?<![\d.,])\d+(?:[.,]\d+)*(?!\d|{_LETTER}|[.,]\d)")
#: Thousands grouped by spaces ("1 234 567", also no-break and thin spaces).
_SPACED = re.compile(r"(?<![\d.,])\d{1,3}(?:[ \u00a0\u2009\u202f]\d{3})+(?![\d]|[.,]\d)")
_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th|e|er|ère|eme|ème|º|ª|\.)(?=\s|$)", re.IGNORECASE)


#: A decimal digit of another script (Arabic-Indic, Devanagari, full-width...): Unicode category Nd, not 0-9.
_OTHER_DIGIT = re.compile(r"(?![0-9])\d")


def _ascii_digits(text: str) -> str:
    """Every decimal digit of another script (Arabic-Indic, Devanagari, full-width...) as its ASCII digit."""
    return text if text.isascii() else _OTHER_DIGIT.sub(lambda m: str(unicodedata.decimal(m.group())), text)


def extract_numbers(text: str) -> frozenset[str]:
    """Numbers that survive translation: digits, normalised (no separators), ordinals kept.

    Thousands separators of every format ("1,500", "1.500", "1 500") are removed, a
    decimal comma becomes a point, digits of any script are read as ASCII digits, and a
    number may touch CJK characters ("832人"). Single-digit numbers are dropped: they are
    too common to be evidence.

    Examples:
        >>> sorted(extract_numbers("On 12 January 2025, 1,500 people; the 11th Congress."))
        ['11', '12', '1500', '2025']
        >>> sorted(extract_numbers("1 234 Menschen, 1.234 personas, 1234人, ١٢٣٤ شخص"))
        ['1234']

    """
    text = _ascii_digits(text)
    text = _SPACED.sub(lambda m: re.sub(r"\D", "", m.group(0)), text)
    found: set[str] = set()
    for m in _ORDINAL.finditer(text):
        found.add(m.group(1))
    for m in _NUMBER.finditer(text):
        token = m.group(0)
        # 1,500 / 1.500 as thousands -> 1500; 3.5 and 3,5 stay a decimal (3.5).
        parts = re.split(r"[.,]", token)
        thousands = len(parts) > 1 and all(len(p) == 3 for p in parts[1:])
        token = "".join(parts) if thousands else token.replace(",", ".")
        found.add(token)
    return frozenset(n for n in found if len(n) >= 2)


_NAME = re.compile(r"\b[^\W\d_][^\W_]*(?:[-'’][^\W\d_][^\W_]*)*", re.UNICODE)


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


_TRANSLIT = str.maketrans(
    {
        **dict(zip("абвгдезийклмнопрстуфхцыэ", "abvgdeziiklmnoprstufhcye", strict=True)),
        **{"ё": "e", "ж": "zh", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ь": "", "ю": "yu", "я": "ya"},
        **{"є": "ye", "і": "i", "ї": "yi", "ґ": "g", "ў": "u", "ј": "j", "љ": "lj", "њ": "nj", "ћ": "c", "ђ": "dj", "џ": "dz"},
        **dict(
            zip(
                "αβγδεζηθικλμνξοπρστυφχψω",
                [
                    "a",
                    "v",
                    "g",
                    "d",
                    "e",
                    "z",
                    "i",
                    "th",
                    "i",
                    "k",
                    "l",
                    "m",
                    "n",
                    "x",
                    "o",
                    "p",
                    "r",
                    "s",
                    "t",
                    "y",
                    "f",
                    "ch",
                    "ps",
                    "o",
                ],
                strict=True,
            )
        ),
        **{"ς": "s", "ı": "i", "ł": "l", "ß": "ss", "ø": "o", "æ": "ae", "œ": "oe", "þ": "th", "ð": "d"},
    }
)


def name_key(name: str) -> str:
    """A name folded for matching across scripts: accents removed, Cyrillic and Greek transliterated.

    Examples:
        >>> name_key("Путин"), name_key("Zełenski"), name_key("Αθήνα")
        ('putin', 'zelenski', 'athina')

    """
    return _fold(name).translate(_TRANSLIT)


def extract_names(text: str, min_len: int = 3) -> frozenset[str]:
    """Candidate proper names: capitalised words not at a sentence start, and acronyms.

    Names are folded (lower case, accents removed) so "Tô Lâm" matches "To Lam".

    Examples:
        >>> sorted(extract_names("Party chief Tô Lâm received Vilay Lakhamphong in Hà Nội."))
        ['lakhamphong', 'lam', 'noi', 'vilay']

    """
    found: set[str] = set()
    for sentence in re.split(r"(?<=[.!?:;])\s+|\n", text):
        words = list(_NAME.finditer(sentence))
        for pos, m in enumerate(words):
            word = m.group(0)
            if pos == 0 and not word.isupper():
                continue  # sentence-initial capital says nothing
            if word[0].isupper() and len(word) >= min_len:
                found.add(_fold(word))
    return frozenset(found)
