from __future__ import annotations

import pytest

from dedup.config import BACKENDS, INDEX_KINDS, Config
from dedup.errors import ConfigError


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("threshold", 1.5, r"threshold must be in \[0, 1\], got 1.5"),
        ("candidates", 0, "candidates must be a positive integer"),
        ("model", "", "model must be a non-empty string"),
        ("max_date_gap_days", -1, "max_date_gap_days"),
        ("max_passage_chars", 5, "at least 20"),
    ],
)
def test_invalid_values_are_named(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(**{field: value})


def test_with_validates_and_rejects_unknown_fields() -> None:
    assert Config().with_(threshold=0.7).threshold == 0.7
    with pytest.raises(ConfigError, match="unknown config field"):
        Config().with_(thresold=0.7)
    with pytest.raises(ConfigError):
        Config().with_(threshold=-0.1)


def test_value_lists_are_defined_once_and_named_in_errors() -> None:
    from dedup.search.index import INDEX_KINDS as index_kinds

    assert index_kinds is INDEX_KINDS
    for backend in BACKENDS:
        assert Config(backend=backend).backend == backend
    for kind in (None, *INDEX_KINDS):
        assert Config(index=kind).index == kind
    with pytest.raises(ConfigError, match=r"backend must be 'auto', 'onnx-int8', 'openvino' or 'torch', got 'gpu'"):
        Config(backend="gpu")
    with pytest.raises(ConfigError, match=r"index must be 'auto', 'flat', 'hnsw' or 'ivf', got 'lsh'"):
        Config(index="lsh")
