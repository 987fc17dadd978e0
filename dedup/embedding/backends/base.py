"""What the fast backends share: a local mean-pooled sentence-transformers model run outside torch.

The ONNX Runtime (:mod:`dedup.embedding.backends.onnx`) and OpenVINO
(:mod:`dedup.embedding.backends.openvino`) encoders import their engine or say what to
install, check that the folder is ``Transformer -> Pooling(mean) [-> Normalize]``, read
the folder's ``tokenizer.json`` and prompts, batch texts by token count, mean-pool the
network's last hidden state over real tokens, and keep their converted network in a
subfolder of the model folder, built once and atomically from the PyTorch weights. This
module holds those parts (:class:`LocalModel`); each backend only converts and runs the network.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from dedup.embedding.default_model import ensure_weights, weight_sizes, weights_in_use
from dedup.embedding.naming import encoder_name
from dedup.errors import ModelError, OptionalDependencyError

__all__ = ["LocalModel", "choose_prompt", "local_supported"]

logger = logging.getLogger(__name__)

Feeds = dict[str, NDArray[np.int64]]


def _json_object(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or a :class:`ModelError` naming the file."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object")
    return data


def _optional_json_object(path: Path) -> dict[str, Any]:
    return _json_object(path) if path.is_file() else {}


def choose_prompt(model: str, prompt_name: str | None, prompts: Mapping[str, str]) -> str | None:
    """The prompt to use: ``"auto"`` is ``query`` when the model defines it, else none.

    E5 models recommend the query prompt on both sides for symmetric tasks such as bitext mining.

    Raises:
        ModelError: The model has no prompt of that name.

    """
    if prompt_name == "auto":
        return "query" if "query" in prompts else None
    if prompt_name is not None and prompt_name not in prompts:
        raise ModelError(f"model {model!r} has no prompt named {prompt_name!r}; it has {sorted(prompts)}")
    return prompt_name


def local_supported(folder: Path) -> str | None:
    """None when ``folder`` is a ``Transformer -> Pooling(mean) [-> Normalize]`` folder, else why not."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return f"{folder} is not a local sentence-transformers folder"
    modules = json.loads(modules_file.read_text("utf-8"))
    types = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if types[:2] != ["Transformer", "Pooling"] or any(t != "Normalize" for t in types[2:]):
        return f"modules {types} are not Transformer -> Pooling [-> Normalize]"
    pooling = _json_object(folder / modules[1]["path"] / "config.json")
    if not pooling.get("pooling_mode_mean_tokens") or any(
        v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"
    ):
        return "only mean pooling is supported"
    if not (folder / "tokenizer.json").is_file():
        return "the folder has no tokenizer.json"
    return None


def engine_supported(package: str, folder: Path) -> str | None:
    """None when the engine ``package`` imports and ``folder`` can run on it, else the reason it cannot."""
    try:
        importlib.import_module(package)
    except ImportError:
        return f"the {package} package is not installed"
    return local_supported(folder)


class LocalModel:
    """Engine import, folder check, tokeniser, prompt, batching and pooling of a local model folder.

    A backend sets the class attributes and converts and runs the network.

    Args:
        folder: The sentence-transformers model folder.
        model: The model name; the encoder reports it as :func:`dedup.embedding.naming.encoder_name`
            builds it (``:int8`` for an int8 backend, then the prompt).
        prompt_name: ``"auto"`` uses the ``query`` prompt when the model defines one.

    Raises:
        OptionalDependencyError: The engine's package is not installed.
        ModelError: The folder is not supported (see :func:`local_supported`).

    """

    ENGINE: ClassVar[str]
    """The engine in words, for messages (``"ONNX Runtime"``)."""
    PACKAGE: ClassVar[str]
    """The engine's import name (``"onnxruntime"``)."""
    FEATURE: ClassVar[str]
    """What the engine is needed for, for :class:`OptionalDependencyError`."""
    INT8: ClassVar[bool] = False
    """The backend's vectors are int8 ones (its name says so)."""

    def __init__(self, folder: str | Path, model: str, *, prompt_name: str | None = "auto") -> None:
        from tokenizers import Tokenizer

        self.engine = self._import_engine()
        self.folder = Path(folder)
        self._model = model
        reason = local_supported(self.folder)
        if reason is not None:
            raise ModelError(f"model {model!r} cannot run on {self.ENGINE}: {reason}")
        st_config = _optional_json_object(self.folder / "config_sentence_transformers.json")
        prompts: dict[str, str] = dict(st_config.get("prompts") or {})
        self._prompt_name = choose_prompt(model, prompt_name, prompts)
        self._prompt = prompts.get(self._prompt_name, "") if self._prompt_name else ""
        bert = _optional_json_object(self.folder / "sentence_bert_config.json")
        self._dim = int(_json_object(self.folder / "config.json")["hidden_size"])
        self._tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(int(bert.get("max_seq_length") or 512))
        self._tokenizer.no_padding()  # each batch is padded to its own longest member
        pad_id = self._tokenizer.token_to_id("<pad>")
        self._pad_id = 0 if pad_id is None else pad_id

    @classmethod
    def _import_engine(cls) -> ModuleType:
        try:
            return importlib.import_module(cls.PACKAGE)
        except ImportError as exc:
            raise OptionalDependencyError(cls.PACKAGE, cls.FEATURE) from exc

    @classmethod
    def supported(cls, folder: Path) -> str | None:
        """None when ``folder`` can run on this engine, else the reason it cannot."""
        return engine_supported(cls.PACKAGE, folder)

    @property
    def name(self) -> str:
        """The model name, ``:int8`` for int8 vectors, and the prompt used (:mod:`dedup.embedding.naming`)."""
        return encoder_name(self._model, int8=self.INT8, prompt=self._prompt_name)

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
        stamp = {**version, "weights": weight_sizes(self.folder)}  # dropped fp32 weights count at their size
        if marker.is_file() and json.loads(marker.read_text("utf-8")) == stamp:
            return target / main_file
        logger.info("converting %s for %s (once; cached in %s)", self._model, target.name, target)
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
            raise ModelError(f"converting {self._model} for {target.name} failed: {exc}") from exc
        logger.info("converted %s for %s in %.0f s", self._model, target.name, time.perf_counter() - started)
        return target / main_file

    def example_feeds(self) -> Feeds:
        """Two tokenised texts in one padded batch: the example a conversion traces."""
        return self.token_batches(["a", "a longer example sentence"], 2)[0][1]

    def torch_model(self, **options: Any) -> Any:  # noqa: ANN401  (a transformers PreTrainedModel)
        """The folder's network in PyTorch (for conversion), quiet and in eval mode.

        Raises:
            ModelError: The weights cannot be loaded.

        """
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        with weights_in_use(self.folder):  # not dropped by another process while they load
            ensure_weights(self.folder)  # the default model's fp32 weights, if they were dropped
            try:
                return AutoModel.from_pretrained(str(self.folder), **options).eval()
            except (OSError, ValueError) as exc:
                raise ModelError(f"cannot load the weights in {self.folder} for conversion: {exc}") from None


def last_hidden(model: Any) -> Any:  # noqa: ANN401  (torch modules)
    """``model`` wrapped to return only its last hidden state: the network an engine runs."""
    import torch

    class _LastHidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:  # noqa: ANN401
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:  # noqa: ANN401
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return _LastHidden(model).eval()
