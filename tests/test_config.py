from __future__ import annotations

import pytest

from dedup.config import Config
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
