"""Language centring: remove each language's mean from article vectors before retrieval.

A multilingual model puts every article of one language a little towards that language's
own direction. Across languages this offset outweighs the story: on NTREX (the same
articles in 21 languages) the model's plain cosine ranked the Arabic translation of a
Lao article first for only 5 % of the articles. Subtracting the mean vector of each
language and re-normalising removes the offset; the story is what is left. Measured on
the held-out half of ``ntrex_dev`` (means fitted on the other half, ``python -m
benchmarks.fit_language_means``): cross-language recall@1 0.964 -> 0.999, worst language
pair 0.05 -> 0.983.

The means belong to one model's vector space: they ship, in ``language_means.json``, for
the default model only (fitted on its int8 vectors, and used for its fp32 vectors too,
which differ by a cosine of 0.996 on average). Other models run uncentred. A language without a fitted mean (or
an article of unknown language) has the mean of all the language means removed, which is
what the languages share.

Passage vectors stay as the model gives them: passage alignment compares them directly.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup.embedding.naming import centring_tag
from dedup.errors import ModelError

__all__ = ["LanguageCentring", "centring_for"]

MEANS_FILE = "language_means.json"


def _lang_key(lang: str | None) -> str | None:
    """``pt-BR`` -> ``pt``; None and empty stay None."""
    if not lang:
        return None
    return lang.replace("_", "-").split("-")[0].lower() or None


@dataclass(frozen=True, eq=False)
class LanguageCentring:
    """Per-language mean vectors of one model, and how to remove them.

    Attributes:
        models: The encoder names the means apply to (the first is the one they were
            fitted with).
        version: Changes whenever the means are refitted; stores record it.
        means: Language code -> mean article vector (not normalised).
        shared: The mean of all language means, removed for other languages.
        fitted_on: Where the means come from, in words.

    """

    models: tuple[str, ...]
    version: int
    means: Mapping[str, NDArray[np.float32]]
    shared: NDArray[np.float32]
    fitted_on: str = ""

    @classmethod
    def fit(
        cls,
        models: Sequence[str],
        vectors: NDArray[np.float32],
        langs: Sequence[str | None],
        *,
        version: int = 1,
        fitted_on: str = "",
    ) -> LanguageCentring:
        """Means of ``vectors`` per language (articles of unknown language are ignored).

        Examples:
            >>> v = np.array([[1, 1], [1, -1], [-1, 1]], dtype=np.float32)
            >>> c = LanguageCentring.fit(["m"], v, ["en", "en", "fr"])
            >>> c.means["en"].tolist(), c.shared.tolist()
            ([1.0, 0.0], [0.0, 0.5])

        """
        keys = [_lang_key(lang) for lang in langs]
        means: dict[str, NDArray[np.float32]] = {}
        for key in sorted({k for k in keys if k is not None}):
            rows = np.asarray([k == key for k in keys])
            means[key] = vectors[rows].mean(axis=0).astype(np.float32)
        if not means:
            raise ValueError("no article has a language: nothing to fit")
        shared = np.mean(np.vstack(list(means.values())), axis=0).astype(np.float32)
        return cls(tuple(models), version, means, shared, fitted_on)

    @property
    def tag(self) -> str:
        """What a store records next to the model name (``lang-centred-v1``)."""
        return centring_tag(self.version)

    def apply(self, vectors: NDArray[np.float32], langs: Sequence[str | None]) -> NDArray[np.float32]:
        """Remove each row's language mean, then normalise each row to unit length.

        Examples:
            >>> c = LanguageCentring(("m",), 1, {"en": np.array([0.5, 0.0], np.float32)}, np.array([0.0, 0.5], np.float32))
            >>> c.apply(np.array([[1, 1], [1, 1]], np.float32), ["en", "xx"]).astype(float).round(3).tolist()
            [[0.447, 0.894], [0.894, 0.447]]

        """
        if len(vectors) != len(langs):
            raise ValueError(f"{len(vectors)} vectors but {len(langs)} languages")
        offsets = np.vstack([self.means.get(_lang_key(lang) or "", self.shared) for lang in langs]) if len(langs) else 0.0
        centred = np.asarray(vectors, dtype=np.float32) - offsets
        norms = np.linalg.norm(centred, axis=1, keepdims=True)
        out: NDArray[np.float32] = (centred / np.maximum(norms, 1e-12)).astype(np.float32)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the format of ``language_means.json``)."""
        return {
            "models": list(self.models),
            "version": self.version,
            "fitted_on": self.fitted_on,
            "dim": int(self.shared.shape[0]),
            "means": {k: [round(float(x), 6) for x in v] for k, v in sorted(self.means.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LanguageCentring:
        """Inverse of :meth:`to_dict`; refuses vectors of the wrong dimension."""
        dim = int(data["dim"])
        means = {str(k): np.asarray(v, dtype=np.float32) for k, v in dict(data["means"]).items()}
        for lang, mean in means.items():
            if mean.shape != (dim,):
                raise ModelError(f"language mean {lang!r} has shape {mean.shape}, expected ({dim},)")
        if not means:
            raise ModelError("language centring has no means")
        shared = np.mean(np.vstack(list(means.values())), axis=0).astype(np.float32)
        models = tuple(str(m) for m in data["models"])
        return cls(models, int(data["version"]), means, shared, str(data.get("fitted_on", "")))


@functools.cache
def _shipped() -> LanguageCentring | None:
    file = resources.files("dedup.embedding").joinpath(MEANS_FILE)
    if not file.is_file():
        return None
    try:
        return LanguageCentring.from_dict(json.loads(file.read_text("utf-8")))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"dedup/{MEANS_FILE} is not valid ({exc}); reinstall dedup") from None


def centring_for(model: str, dim: int | None = None) -> LanguageCentring | None:
    """The shipped centring for encoder ``model``, or None when there is none for it."""
    shipped = _shipped()
    if shipped is None or model not in shipped.models:
        return None
    if dim is not None and shipped.shared.shape[0] != dim:
        return None
    return shipped
