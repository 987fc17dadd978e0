"""Hostile JSONL lines for the fuzz tests: whatever a feed can hold, as raw bytes.

Random JSON values, wrong types, huge integers and numbers, NaN and Infinity, bad dates,
every line-separator class, surrogate escapes, deep nesting and bytes that are not UTF-8,
in every field of an otherwise plausible article, and as whole lines.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

FIELDS = ["id", "title", "text", "date", "lang", "source", "url", "extra", "story", "", "ID", "\u2028"]

# Strings with every line-separator class and control characters (json.dumps keeps them valid JSON).
ODD_CHARS = "\n\r\t\x00\x1b\x7f\x85\u2028\u2029\u200b\ufeff\ud800\u00e9\u4e2d\U0001f600\\\"'"
odd_text = st.text(alphabet=st.sampled_from(ODD_CHARS) | st.characters(), max_size=40)

BAD_DATES = [
    "9999-12",
    "9999-12-31",
    "0000",
    "0001-01-01",
    "2025-13",
    "2025-02-30",
    "2025-01-01 garbage",
    "2025-01-01T10:00:00Z",
    " 2025",
    "+2025",
    "2025-1-1",
    "12/01/2025",
    "",
    "\u0662\u0660\u0662\u0665",  # Arabic-Indic digits
    "2025\n-01",
]

# Raw JSON value fragments (bytes): things json.dumps never writes, or writes only with effort.
RAW_VALUES = [
    b"9" * 5000,
    b"-" + b"9" * 5000,
    b"1" + b"0" * 400 + b".5",
    b"1e999",
    b"-1e999",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e-999",
    b'"\\ud800"',
    b'"\\udfff x"',
    b'"\\ud83d\\ude00 ok"',
    b'"a\\u2028b\\u0085c\\u2029d"',
    b'"\\u0000"',
    b"[" * 3000 + b"]" * 3000,
    b'{"a":' * 1000 + b"1" + b"}" * 1000,
    b'"\xff\xfe"',
    b'"caf\xe9"',
    b'"\xc3\x28"',
    b'"\xed\xa0\x80"',  # a surrogate encoded in UTF-8 (invalid)
    b"{}",
    b"[]",
    b"null",
    b"true",
    b'""',
    b'"' + b"x" * 3000 + b'"',
]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


def _dump(value: object, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


raw_values = st.one_of(
    st.builds(_dump, json_values, st.booleans()),
    st.builds(_dump, odd_text, st.booleans()),  # ensure_ascii: surrogates become \\u escapes
    st.sampled_from(BAD_DATES).map(lambda d: _dump(d, False)),
    st.sampled_from(RAW_VALUES),
)


def _article(base: dict[str, object], hostile: list[tuple[str, bytes]]) -> bytes:
    parts = [json.dumps(k).encode() + b": " + _dump(v, False) for k, v in base.items() if k not in dict(hostile)]
    parts += [json.dumps(k, ensure_ascii=False).encode("utf-8", "surrogatepass") + b": " + v for k, v in hostile]
    return b"{" + b", ".join(parts) + b"}"


plausible = st.fixed_dictionaries(
    {"id": st.one_of(st.text(min_size=1, max_size=12), odd_text), "title": st.sampled_from(["Hanoi talks", "Louvre strike"])},
    optional={"text": st.text(max_size=80), "date": st.sampled_from(["2025-01-12", *BAD_DATES]), "lang": st.text(max_size=4)},
)

#: One hostile JSONL line, without its newline.
lines = st.one_of(
    st.builds(_article, plausible, st.lists(st.tuples(st.sampled_from(FIELDS), raw_values), max_size=3)),
    plausible.map(lambda d: _dump(d, False)),
    raw_values,
    st.binary(max_size=60),
    st.just(b"\xef\xbb\xbf" + b'{"id": "bom", "title": "t"}'),
    st.just(b'{"id": "cr", "title": "t"}\r'),
)


def feed(batch: list[bytes]) -> bytes:
    """Lines joined into a feed: inner newlines become spaces (one input line per generated line)."""
    return b"\n".join(line.replace(b"\n", b" ") for line in batch) + b"\n"
