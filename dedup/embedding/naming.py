"""The names of vector spaces: which encoder made a store's vectors, built and read here only.

A store records the space its article vectors live in and refuses vectors of another
(:class:`dedup.errors.StoreMismatchError`). The name has up to four parts::

    dedup/multilingual-e5-small-q4:int8#query+lang-centred-v2
    <---------- model ----------><int8><prompt><-- centring -->

* the model as configured: the default alias, a hub name or a local path;
* ``:int8`` when the ONNX Runtime int8 backend made the vectors: they differ from fp32
  vectors (cosine about 0.995), so they are never mixed with those of OpenVINO or torch,
  which share one name (their vectors agree to a cosine of 0.9999);
* ``#<prompt>`` when a prompt is prepended to every text (``query`` for E5 models);
* ``+lang-centred-v<N>`` when article vectors are language-centred
  (:mod:`dedup.embedding.centring`), with version ``N`` of the means.

The first three parts are the encoder's name (:attr:`dedup.embedding.encoders.Encoder.name`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dedup.embedding.centring import LanguageCentring

__all__ = ["SpaceName", "centring_tag", "encoder_name", "mismatch_hint", "parse_space", "vector_space"]

INT8_SUFFIX = ":int8"
PROMPT_MARK = "#"
CENTRING_MARK = "+lang-centred-v"


def encoder_name(model: str, *, int8: bool = False, prompt: str | None = None) -> str:
    """The name an encoder reports: the model, ``:int8`` for int8 vectors, then the prompt.

    Examples:
        >>> encoder_name("dedup/multilingual-e5-small-q4", int8=True, prompt="query")
        'dedup/multilingual-e5-small-q4:int8#query'
        >>> encoder_name("sentence-transformers/LaBSE")
        'sentence-transformers/LaBSE'

    """
    name = model + INT8_SUFFIX if int8 else model
    return name if prompt is None else f"{name}{PROMPT_MARK}{prompt}"


def centring_tag(version: int) -> str:
    """What a space name records of a centring: ``lang-centred-v<version>``."""
    return f"{CENTRING_MARK[1:]}{version}"


def vector_space(encoder: str, centring: LanguageCentring | None) -> str:
    """The name a store records for its article vectors: the encoder's name, plus the centring.

    Examples:
        >>> vector_space("m#query", None)
        'm#query'

    """
    return encoder if centring is None else f"{encoder}+{centring_tag(centring.version)}"


@dataclass(frozen=True)
class SpaceName:
    """The parts of a vector-space (or encoder) name; :func:`parse_space` makes one.

    Attributes:
        model: The model as configured.
        int8: The vectors come from the int8 backend.
        prompt: The prompt prepended to texts, or None.
        centring: The version of the language means removed, or None (not centred).

    """

    model: str
    int8: bool = False
    prompt: str | None = None
    centring: int | None = None

    @property
    def encoder(self) -> str:
        """The encoder's name (the space name without the centring)."""
        return encoder_name(self.model, int8=self.int8, prompt=self.prompt)

    @property
    def name(self) -> str:
        """The whole name again: ``parse_space(name).name == name``."""
        return self.encoder if self.centring is None else f"{self.encoder}+{centring_tag(self.centring)}"


def parse_space(name: str) -> SpaceName:
    """Split a vector-space or encoder name into its parts (the last ``#`` starts the prompt).

    Examples:
        >>> parse_space("dedup/multilingual-e5-small-q4:int8#query+lang-centred-v2")
        SpaceName(model='dedup/multilingual-e5-small-q4', int8=True, prompt='query', centring=2)
        >>> parse_space("intfloat/multilingual-e5-large#query").model
        'intfloat/multilingual-e5-large'

    """
    rest, centring = name, None
    head, mark, version = name.rpartition(CENTRING_MARK)
    if mark and version.isdigit():
        rest, centring = head, int(version)
    head, mark, prompt = rest.rpartition(PROMPT_MARK)
    if mark and prompt:
        rest = head
    int8 = rest.endswith(INT8_SUFFIX)
    model = rest[: -len(INT8_SUFFIX)] if int8 else rest
    return SpaceName(model, int8, prompt if mark and prompt else None, centring)


def mismatch_hint(stored: str, wanted: str) -> str:
    """What to do when a store's space differs from the encoder's only in a known way ("" otherwise).

    Examples:
        >>> "not language-centred" in mismatch_hint("m#query", "m#query+lang-centred-v2")
        True
        >>> "--backend onnx-int8" in mismatch_hint("m:int8#query", "m#query")
        True
        >>> mismatch_hint("m", "other")
        ''

    """
    old, new = parse_space(stored), parse_space(wanted)
    same_encoder = (old.model, old.prompt) == (new.model, new.prompt)
    if same_encoder and old.int8 == new.int8 and old.centring is None and new.centring is not None:
        return (
            " (the store's article vectors are not language-centred: it was built by an older dedup; "
            "rebuild it from its articles)"
        )
    if same_encoder and old.int8 != new.int8 and old.centring == new.centring:
        backend = "--backend onnx-int8 (the default)" if old.int8 else "--backend openvino or --backend torch"
        return f" (same model, other backend: its vectors were made with {backend}; open it with that)"
    return ""
