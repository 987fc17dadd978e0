"""The fast CPU path for sentence-transformers models: the same network, run by OpenVINO.

A local sentence-transformers folder (the default model is one) whose modules are
``Transformer -> Pooling(mean) -> [Normalize]`` is converted once to OpenVINO IR with
``openvino.convert_model`` (straight from the PyTorch module: no optimum, no torchvision,
so the CPU torch build stays in place), and cached in the folder's ``openvino/`` subfolder.
Later loads read the IR and the ``tokenizer.json`` only: torch is not even imported.

The vectors are those of sentence-transformers (cosine >= 0.9999 on the dev sets, see
``benchmarks/hotpath.py``), so the encoder keeps the model's name and stores built with
either backend stay interchangeable.

OpenVINO is an optional extra (about 180 MB): ``pip install 'dedup[openvino]'``. Without it,
``--backend openvino`` fails with an error naming the extra, and ``--backend auto`` runs
such models on torch instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup.embedding.backends.base import LocalModel, last_hidden
from dedup.errors import ModelError, OptionalDependencyError

__all__ = ["EXTRA", "OpenVINOEncoder", "openvino_supported"]

logger = logging.getLogger(__name__)

#: The pip extra that installs OpenVINO: ``pip install 'dedup[openvino]'``.
EXTRA = "openvino"
IR_FOLDER = "openvino"
IR_VERSION = 1
# Passages per inference request. Small requests keep both streams busy and pad least:
# 8 ran 1.3x faster than 32 on NTREX passages (2 cores, benchmarks/hotpath.py --parts embed).
STREAM_BATCH = 8


def openvino_supported(folder: Path) -> str | None:
    """None when ``folder`` can run on OpenVINO, else the reason it cannot."""
    return OpenVINOEncoder.supported(folder)


class OpenVINOEncoder(LocalModel):
    """A mean-pooled sentence-transformers model from a local folder, run by OpenVINO.

    Args:
        folder: The sentence-transformers model folder.
        name: The model name to report (the one stores record).
        prompt_name: As :class:`dedup.embedding.encoders.SentenceTransformerEncoder`: ``"auto"`` uses
            the ``query`` prompt when the model defines one.
        threads: Inference threads (default: all cores).

    Raises:
        OptionalDependencyError: openvino is not installed.
        ModelError: The folder is not supported (see :func:`openvino_supported`) or
            cannot be converted.

    """

    ENGINE = "OpenVINO"
    PACKAGE = "openvino"
    FEATURE = "the OpenVINO embedding backend (--backend openvino)"

    @classmethod
    def _import_engine(cls) -> ModuleType:
        try:
            return importlib.import_module(cls.PACKAGE)
        except ImportError as exc:
            raise OptionalDependencyError(cls.PACKAGE, cls.FEATURE, extra=EXTRA) from exc

    @classmethod
    def supported(cls, folder: Path) -> str | None:
        """None when ``folder`` can run on OpenVINO, else the reason (naming the extra when openvino is missing)."""
        if importlib.util.find_spec(cls.PACKAGE) is None:
            return f"the {cls.PACKAGE} package is not installed (pip install 'dedup[{EXTRA}]')"
        return super().supported(folder)

    def __init__(self, folder: str | Path, name: str, *, prompt_name: str | None = "auto", threads: int | None = None) -> None:
        super().__init__(folder, name, prompt_name=prompt_name)
        ir = self._ensure_ir()
        core = self.engine.Core()
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

    def encode(self, texts: Sequence[str], *, batch_size: int = STREAM_BATCH, show_progress: bool = False) -> NDArray[np.float32]:
        """Embed ``texts``, batched by token count (:meth:`LocalModel.token_batches`).

        One batch runs on the latency-tuned model (all cores on one request). Several
        batches run on the throughput-tuned one: one inference stream per core, fed
        asynchronously, which keeps every core busy on small matrices.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        batches = [
            (rows, {k: v for k, v in feeds.items() if k in self._inputs}) for rows, feeds in self.token_batches(texts, batch_size)
        ]
        bar = self._progress(len(texts), show_progress)

        def store(rows: list[int], hidden: NDArray[np.float32], mask: NDArray[np.int64]) -> None:
            out[rows] = self.pool(hidden, mask)
            if bar is not None:
                bar.update(len(rows))

        if len(batches) == 1:
            rows, feeds = batches[0]
            store(rows, self._compiled(feeds)[self._output], feeds["attention_mask"])
        elif batches:
            import openvino as ov

            queue = ov.AsyncInferQueue(self._throughput(), 0)
            queue.set_callback(
                lambda request, k: store(batches[k][0], request.get_output_tensor(0).data, batches[k][1]["attention_mask"])
            )
            for k, (_, feeds) in enumerate(batches):
                queue.start_async(feeds, userdata=k)
            queue.wait_all()
        if bar is not None:
            bar.close()
        return out

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
        return self.build_once(self.folder / IR_FOLDER, "model.xml", {"ir_version": IR_VERSION}, self._convert)

    def _convert(self, tmp: Path) -> None:
        import openvino as ov
        import torch

        model = self.torch_model()
        sample = self.example_feeds()
        example = {k: torch.from_numpy(sample[k]) for k in ("input_ids", "attention_mask")}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and deprecation chatter from the conversion
            converted = ov.convert_model(last_hidden(model), example_input=example)
        ov.save_model(converted, str(tmp / "model.xml"), compress_to_fp16=False)
