"""Run the ``dedup`` command with the fake :class:`HashEncoder` instead of a real model.

Used by tests that need a real process (kill -9, a real server, stdin/stdout pipes):
``python -m tests.fake_cli serve --store DIR ...`` behaves as ``dedup serve`` does, with
a model that loads instantly.
"""

from __future__ import annotations

import sys

import dedup.detect.archive
import dedup.detect.detector
from dedup.cli import main
from tests.conftest import HashEncoder

_ENCODER = HashEncoder()
dedup.detect.detector.load_encoder = lambda model, **kwargs: _ENCODER  # type: ignore[assignment]
dedup.detect.archive.load_encoder = lambda model, **kwargs: _ENCODER  # type: ignore[assignment]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
