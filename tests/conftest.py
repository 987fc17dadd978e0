"""Shared fixtures. Unit tests use the demo corpus in data/ (never ../shared)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "data"
TRUE_PAIR = ("000_57c5f2451950a71c", "004_7759ea6dc643d52c")


class HashEncoder:
    """A deterministic bag-of-character-trigrams encoder for plumbing tests (no model).

    Texts that share many trigrams get similar vectors, so retrieval and verification
    behave sensibly within one language. It knows nothing across languages.
    """

    def __init__(self, dim: int = 512, name: str = "test/hash-encoder") -> None:
        self._dim = dim
        self._name = name
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool = False) -> NDArray[np.float32]:
        self.calls += 1
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            norm = re.sub(r"\s+", " ", text.lower())
            for k in range(max(len(norm) - 2, 1)):
                digest = hashlib.blake2b(norm[k : k + 3].encode(), digest_size=4).digest()
                out[row, int.from_bytes(digest, "little") % self._dim] += 1.0
            out[row] /= max(float(np.linalg.norm(out[row])), 1e-9)
        return out


@pytest.fixture(autouse=True)
def _private_embedding_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Detectors use the embedding cache by default (as the CLI does): in tests, each gets a fresh one.

    A test that sets ``$DEDUP_CACHE_DIR`` gets that folder, as users do; no test shares ~/.cache/dedup.
    """
    import dedup.embedding.cache as cache_module

    real = cache_module.default_cache_dir

    def private() -> Path:
        return real() if os.environ.get("DEDUP_CACHE_DIR") else tmp_path_factory.mktemp("embedding-cache")

    monkeypatch.setattr(cache_module, "default_cache_dir", private)


@pytest.fixture
def encoder() -> HashEncoder:
    return HashEncoder()


@pytest.fixture
def seed_dir(tmp_path: Path) -> Path:
    """A private copy of the demo corpus."""
    target = tmp_path / "seeds"
    shutil.copytree(SEEDS, target)
    return target


# Figures the reliability tests measure (trials, cases, requests/s), printed at the end of the run.
RELIABILITY: list[str] = []


@pytest.fixture
def figures() -> list[str]:
    """Append a line here to have it printed in the 'reliability figures' summary."""
    return RELIABILITY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RELIABILITY:
        terminalreporter.section("reliability figures")
        for line in RELIABILITY:
            terminalreporter.write_line(line)
