"""Vector-space names (dedup/embedding/naming.py): built and read in one place, round trips, store hints."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dedup.embedding.naming import SpaceName, centring_tag, encoder_name, mismatch_hint, parse_space, vector_space

DEFAULT_SPACE = "dedup/multilingual-e5-small-q4:int8#query+lang-centred-v2"

# Model names as users give them: hub names and paths, without the two marks the name uses.
models = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="#"), min_size=1, max_size=40).filter(
    lambda m: not m.endswith(":int8") and "+lang-centred-v" not in m
)
prompts = st.none() | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="#+"), min_size=1, max_size=12)


def test_the_default_space_name_and_its_parts() -> None:
    assert parse_space(DEFAULT_SPACE) == SpaceName("dedup/multilingual-e5-small-q4", int8=True, prompt="query", centring=2)
    assert parse_space(DEFAULT_SPACE).encoder == "dedup/multilingual-e5-small-q4:int8#query"
    assert encoder_name("dedup/multilingual-e5-small-q4", int8=True, prompt="query") + "+" + centring_tag(2) == DEFAULT_SPACE
    assert parse_space("sentence-transformers/LaBSE") == SpaceName("sentence-transformers/LaBSE")
    assert parse_space("/models/e5#v2#query").model == "/models/e5#v2"  # the last '#' starts the prompt


@given(models, st.booleans(), prompts, st.none() | st.integers(1, 99))
def test_names_round_trip(model: str, int8: bool, prompt: str | None, centring: int | None) -> None:
    name = SpaceName(model, int8, prompt, centring).name
    assert parse_space(name) == SpaceName(model, int8, prompt, centring)
    assert parse_space(name).encoder == encoder_name(model, int8=int8, prompt=prompt)


def test_vector_space_appends_the_centring_version() -> None:
    class Centring:
        version = 3

    assert vector_space("m#query", None) == "m#query"
    assert vector_space("m#query", Centring()) == "m#query+lang-centred-v3"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stored", "wanted", "hint"),
    [
        ("m:int8#query", "m:int8#query+lang-centred-v2", "not language-centred"),
        ("m:int8#query+lang-centred-v2", "m#query+lang-centred-v2", "--backend onnx-int8 (the default)"),
        ("m#query+lang-centred-v2", "m:int8#query+lang-centred-v2", "--backend openvino or --backend torch"),
        ("m#query+lang-centred-v2", "other#query+lang-centred-v2", None),
        ("m#query", "m#passage+lang-centred-v2", None),
        ("m:int8#query", "m#query+lang-centred-v2", None),  # two differences: no single fix to name
    ],
)
def test_mismatch_hints_name_the_one_difference(stored: str, wanted: str, hint: str | None) -> None:
    if hint is None:
        assert mismatch_hint(stored, wanted) == ""
    else:
        assert hint in mismatch_hint(stored, wanted)
