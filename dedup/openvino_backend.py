"""The fast CPU path for sentence-transformers models: the same network, run by OpenVINO.

A local sentence-transformers folder (the default model is one) whose modules are
``Transformer -> Pooling(mean) -> [Normalize]`` is converted once to OpenVINO IR with
``openvino.convert_model`` (straight from the PyTorch module: no optimum, no torchvision,
so the CPU torch build stays in place), and cached in the folder's ``openvino/`` subfolder.
Later loads read the IR and the ``tokenizer.json`` only: torch is not even imported.

The vectors are those of sentence-transformers (cosine >= 0.9999 on the dev sets, see
``benchmarks/hotpath.py``), so the encoder keeps the model's name and stores built with
either backend stay interchangeable.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import ModelError, OptionalDependencyError

__all__ = ["OpenVINOEncoder", "openvino_supported"]

logger = logging.getLogger(__name__)

IR_FOLDER = "openvino"
IR_VERSION = 1
# Passages per inference request. Small requests keep both streams busy and pad least:
# 8 ran 1.3x faster than 32 on NTREX passages (2 cores, benchmarks/hotpath.py --parts embed).
STREAM_BATCH = 8


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object")
    return data


def openvino_supported(folder: Path) -> str | None:
    """None when ``folder`` can run on OpenVINO, else the reason it cannot."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "the openvino package is not installed"
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return f"{folder} is not a local sentence-transformers folder"
    modules = json.loads(modules_file.read_text("utf-8"))
    types = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if types[:2] != ["Transformer", "Pooling"] or any(t != "Normalize" for t in types[2:]):
        return f"modules {types} are not Transformer -> Pooling [-> Normalize]"
    pooling = _read_json(folder / modules[1]["path"] / "config.json")
    if not pooling.get("pooling_mode_mean_tokens") or any(
        v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"
    ):
        return "only mean pooling is supported"
    if not (folder / "tokenizer.json").is_file():
        return "the folder has no tokenizer.json"
    return None


class OpenVINOEncoder:
    """A mean-pooled sentence-transformers model from a local folder, run by OpenVINO.

    Args:
        folder: The sentence-transformers model folder.
        name: The model name to report (the one stores record).
        prompt_name: As :class:`dedup.embed.SentenceTransformerEncoder`: ``"auto"`` uses
            the ``query`` prompt when the model defines one.
        threads: Inference threads (default: all cores).

    Raises:
        OptionalDependencyError: openvino is not installed.
        ModelError: The folder is not supported (see :func:`openvino_supported`) or
            cannot be converted.

    """

    def __init__(self, folder: str | Path, name: str, *, prompt_name: str | None = "auto", threads: int | None = None) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise OptionalDependencyError("openvino", "the OpenVINO embedding backend") from exc
        from tokenizers import Tokenizer

        self._folder = Path(folder)
        reason = openvino_supported(self._folder)
        if reason is not None:
            raise ModelError(f"model {name!r} cannot run on OpenVINO: {reason}")
        self._name = name
        st_config = (
            _read_json(self._folder / "config_sentence_transformers.json")
            if (self._folder / "config_sentence_transformers.json").is_file()
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
            _read_json(self._folder / "sentence_bert_config.json")
            if (self._folder / "sentence_bert_config.json").is_file()
            else {}
        )
        self._max_length = int(bert.get("max_seq_length") or 512)
        self._dim = int(_read_json(self._folder / "config.json")["hidden_size"])
        self._tokenizer = Tokenizer.from_file(str(self._folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(self._max_length)
        self._tokenizer.no_padding()  # batches are padded by _feeds, each to its own longest member
        pad_id = self._tokenizer.token_to_id("<pad>")
        self._pad_id = 0 if pad_id is None else pad_id
        ir = self._ensure_ir()
        core = ov.Core()
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self._compiled: Any = core.compile_model(str(ir), "CPU", config)
        except RuntimeError as exc:
            raise ModelError(f"OpenVINO cannot compile {ir}: {exc}; delete {ir.parent} to rebuild it") from None
        self._ir = ir
        self._threads = int(threads) if threads else 0
        self._compiled_throughput: Any = None
        self._inputs = {port.get_any_name() for port in self._compiled.inputs}
        self._output = self._compiled.outputs[0]

    @property
    def name(self) -> str:
        """The model name plus the prompt used (as the sentence-transformers backend reports it)."""
        return self._name if self._prompt_name is None else f"{self._name}#{self._prompt_name}"

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    def encode(self, texts: Sequence[str], *, batch_size: int = STREAM_BATCH, show_progress: bool = False) -> NDArray[np.float32]:
        """Embed ``texts``: tokenise, run the network, mean-pool over real tokens, normalise.

        Texts are tokenised once and batched by **token** count, so a batch pads little even
        when scripts differ (sorting by characters, as sentence-transformers does, put
        37 % padding into the NTREX passages: a Lao or Thai passage has far more tokens per
        character than a German one). Padding does not change a vector: pooling and
        attention ignore padded positions.

        One batch runs on the latency-tuned model (all cores on one request). Several
        batches run on the throughput-tuned one: one inference stream per core, fed
        asynchronously, which keeps every core busy on small matrices.
        """
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        ids = [e.ids for e in self._tokenizer.encode_batch([self._prompt + t for t in texts])]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        bar: Any = None
        if show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="embedding", unit="passage")

        def store(rows: list[int], hidden: NDArray[np.float32], mask: NDArray[np.int64]) -> None:
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[rows] = pooled / np.maximum(norms, 1e-12)
            if bar is not None:
                bar.update(len(rows))

        if len(batches) == 1:
            feeds = self._feeds([ids[i] for i in batches[0]])
            store(batches[0], self._compiled(feeds)[self._output], feeds["attention_mask"])
        elif batches:
            import openvino as ov

            queue = ov.AsyncInferQueue(self._throughput(), 0)
            masks: dict[int, NDArray[np.int64]] = {}
            queue.set_callback(
                lambda request, k: store(batches[k], request.get_output_tensor(0).data, masks.pop(k))
            )
            for k, rows in enumerate(batches):
                feeds = self._feeds([ids[i] for i in rows])
                masks[k] = feeds["attention_mask"]
                queue.start_async(feeds, userdata=k)
            queue.wait_all()
        if bar is not None:
            bar.close()
        return out

    def _feeds(self, ids: Sequence[Sequence[int]]) -> dict[str, NDArray[np.int64]]:
        """One batch of token ids, padded to its longest member."""
        width = max((len(row) for row in ids), default=0)
        input_ids = np.full((len(ids), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for r, row in enumerate(ids):
            input_ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        return feeds

    def _throughput(self) -> Any:  # noqa: ANN401  (an openvino CompiledModel)
        if self._compiled_throughput is None:
            import openvino as ov

            config: dict[str, Any] = {"PERFORMANCE_HINT": "THROUGHPUT"}
            if self._threads:
                config["INFERENCE_NUM_THREADS"] = self._threads
            self._compiled_throughput = ov.Core().compile_model(str(self._ir), "CPU", config)
        return self._compiled_throughput

    def _ensure_ir(self) -> Path:
        """The cached IR, converted from the PyTorch weights on first use (atomically)."""
        target = self._folder / IR_FOLDER
        marker = target / "dedup_ir.json"
        weights = sorted(self._folder.glob("*.safetensors")) + sorted(self._folder.glob("pytorch_model.bin"))
        stamp = {"ir_version": IR_VERSION, "weights": {w.name: w.stat().st_size for w in weights}}
        if marker.is_file() and json.loads(marker.read_text("utf-8")) == stamp:
            return target / "model.xml"
        logger.info("converting %s to OpenVINO (once; cached in %s)", self._name, target)
        import openvino as ov
        import torch
        from transformers import AutoModel

        try:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
            model = AutoModel.from_pretrained(str(self._folder)).eval()
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load the weights in {self._folder} for conversion: {exc}") from None

        class _LastHidden(torch.nn.Module):
            def __init__(self, inner: Any) -> None:  # noqa: ANN401
                super().__init__()
                self.inner = inner

            def forward(self, input_ids: Any, attention_mask: Any) -> Any:  # noqa: ANN401
                return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

        sample = self._tokenizer.encode_batch(["query: a", "query: a longer example sentence"])
        example = {
            "input_ids": torch.tensor([e.ids for e in sample], dtype=torch.int64),
            "attention_mask": torch.tensor([e.attention_mask for e in sample], dtype=torch.int64),
        }
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-openvino-", dir=self._folder))
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer and deprecation chatter from the conversion
                converted = ov.convert_model(_LastHidden(model).eval(), example_input=example)
            ov.save_model(converted, str(tmp / "model.xml"), compress_to_fp16=False)
            (tmp / "dedup_ir.json").write_text(json.dumps(stamp), "utf-8")  # written last: marks a complete IR
            if target.exists():
                shutil.rmtree(target)  # stale: another model version, or a conversion that died
            os.replace(tmp, target)
        except OSError:
            # Another process finished the same conversion first: use its result.
            shutil.rmtree(tmp, ignore_errors=True)
            if not (marker.is_file() and json.loads(marker.read_text("utf-8")) == stamp):
                raise ModelError(f"cannot write the OpenVINO model into {target}; check permissions and free space") from None
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ModelError(f"converting {self._name} to OpenVINO failed: {exc}") from exc
        return target / "model.xml"
