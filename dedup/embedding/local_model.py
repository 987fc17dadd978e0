"""A local mean-pooled sentence-transformers model run outside torch: what both fast backends share.

The OpenVINO (:mod:`dedup.embedding.backends.openvino`) and ONNX Runtime (:mod:`dedup.embedding.backends.onnx`)
encoders read the folder's ``tokenizer.json`` and prompts, batch texts by token count,
mean-pool the network's last hidden state over real tokens, and keep their converted
network in a subfolder of the model folder, built once and atomically. This module holds
those parts; each backend only runs the network.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup.errors import ModelError

__all__ = ["LocalModel", "local_supported", "read_json"]

logger = logging.getLogger(__name__)

Feeds = dict[str, NDArray[np.int64]]


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or a :class:`ModelError` naming the file."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object")
    return data


def local_supported(folder: Path) -> str | None:
    """None when ``folder`` is a ``Transformer -> Pooling(mean) [-> Normalize]`` folder, else why not."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return f"{folder} is not a local sentence-transformers folder"
    modules = json.loads(modules_file.read_text("utf-8"))
    types = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if types[:2] != ["Transformer", "Pooling"] or any(t != "Normalize" for t in types[2:]):
        return f"modules {types} are not Transformer -> Pooling [-> Normalize]"
    pooling = read_json(folder / modules[1]["path"] / "config.json")
    if not pooling.get("pooling_mode_mean_tokens") or any(
        v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"
    ):
        return "only mean pooling is supported"
    if not (folder / "tokenizer.json").is_file():
        return "the folder has no tokenizer.json"
    return None


class LocalModel:
    """Tokeniser, prompt, batching and pooling of a local model folder.

    Args:
        folder: The sentence-transformers model folder.
        name: The name the encoder reports (the prompt is appended, as the
            sentence-transformers backend does).
        prompt_name: ``"auto"`` uses the ``query`` prompt when the model defines one.

    """

    def __init__(self, folder: str | Path, name: str, *, prompt_name: str | None = "auto") -> None:
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self._name = name
        st_config = (
            read_json(self.folder / "config_sentence_transformers.json")
            if (self.folder / "config_sentence_transformers.json").is_file()
            else {}
        )
        prompts: dict[str, str] = dict(st_config.get("prompts") or {})
        if prompt_name == "auto":
            prompt_name = "query" if "query" in prompts else None
        if prompt_name is not None and prompt_name not in prompts:
            raise ModelError(f"model {name!r} has no prompt named {prompt_name!r}; it has {sorted(prompts)}")
        self._prompt_name = prompt_name
        self._prompt = prompts.get(prompt_name, "") if prompt_name else ""
        bert = (
            read_json(self.folder / "sentence_bert_config.json") if (self.folder / "sentence_bert_config.json").is_file() else {}
        )
        self._dim = int(read_json(self.folder / "config.json")["hidden_size"])
        self._tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(int(bert.get("max_seq_length") or 512))
        self._tokenizer.no_padding()  # each batch is padded to its own longest member
        pad_id = self._tokenizer.token_to_id("<pad>")
        self._pad_id = 0 if pad_id is None else pad_id

    @property
    def name(self) -> str:
        """The model name plus the prompt used (as the sentence-transformers backend reports it)."""
        return self._name if self._prompt_name is None else f"{self._name}#{self._prompt_name}"

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    def token_batches(self, texts: Sequence[str], batch_size: int) -> list[tuple[list[int], Feeds]]:
        """``texts`` tokenised once, ordered by token count, in padded batches of row indexes.

        Sorting by tokens, not characters (as sentence-transformers does), matters across
        scripts: a Lao or Thai passage has far more tokens per character than a German one,
        and character order left 37 % padding in the NTREX passages. Padding does not change
        a vector: attention and pooling ignore padded positions.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        ids = [e.ids for e in self._tokenizer.encode_batch([self._prompt + t for t in texts])]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        batches = []
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(ids[i]) for i in rows)
            input_ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                input_ids[r, : len(ids[i])] = ids[i]
                mask[r, : len(ids[i])] = 1
            batches.append((rows, {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}))
        return batches

    @staticmethod
    def pool(hidden: NDArray[np.float32], mask: NDArray[np.int64]) -> NDArray[np.float32]:
        """Mean over real tokens, then unit length (the model's Pooling + Normalize)."""
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: NDArray[np.float32] = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return out

    @staticmethod
    def _progress(total: int, show: bool) -> Any:  # noqa: ANN401  (a tqdm bar or None)
        if not show:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="embedding", unit="passage")

    def build_once(self, target: Path, main_file: str, version: dict[str, Any], build: Callable[[Path], None]) -> Path:
        """``target/main_file``, built by ``build(tmp_folder)`` unless a complete build is there.

        A marker file, written last, records the build version and the weights' sizes; the
        folder is moved into place with one rename, so a build that dies leaves nothing that
        looks complete, and two processes building at once both end with a whole model.
        """
        marker = target / "dedup_build.json"
        weights = sorted(self.folder.glob("*.safetensors")) + sorted(self.folder.glob("pytorch_model.bin"))
        stamp = {**version, "weights": {w.name: w.stat().st_size for w in weights}}
        if marker.is_file() and json.loads(marker.read_text("utf-8")) == stamp:
            return target / main_file
        logger.info("converting %s for %s (once; cached in %s)", self._name, target.name, target)
        started = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=self.folder))
        try:
            build(tmp)
            (tmp / marker.name).write_text(json.dumps(stamp), "utf-8")
            tmp.chmod(0o755)  # mkdtemp makes it private; the model folder is readable by all
            if target.exists():
                shutil.rmtree(target)  # stale: another model version, or a build that died
            os.replace(tmp, target)
        except OSError:
            # Another process finished the same build first: use its result.
            shutil.rmtree(tmp, ignore_errors=True)
            if not (marker.is_file() and json.loads(marker.read_text("utf-8")) == stamp):
                raise ModelError(f"cannot write the converted model into {target}; check permissions and free space") from None
        except ModelError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ModelError(f"converting {self._name} for {target.name} failed: {exc}") from exc
        logger.info("converted %s for %s in %.0f s", self._name, target.name, time.perf_counter() - started)
        return target / main_file
