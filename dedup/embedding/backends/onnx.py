"""The default embedding path: the model quantised to int8 and run by ONNX Runtime.

The sentence-transformers folder is exported once to ONNX (``torch.onnx``, eager
attention, so ONNX Runtime's optimiser fuses each layer's attention into one operator),
optimised (``onnxruntime.transformers``: fused attention, skip-layer-norm, bias-GELU) and
quantised dynamically (``onnxruntime.quantization.quantize_dynamic``: int8 weights per
output channel, activations quantised per batch). The result is cached, atomically, in the
folder's ``onnx-int8/`` subfolder; later loads need neither torch nor onnx.

Why int8: at fp32 the network already runs near this CPU's matrix-multiply peak (AVX2, no
VNNI), so only fewer bits per multiply make it faster; ONNX Runtime's int8 kernels do
about twice the work per cycle here. The vectors move a little (cosine to the fp32 vectors:
mean 0.995, min 0.98 on NTREX passages), so this encoder has its own name and stores built
with it are not mixed with fp32 ones; the quality figures are measured with it
(``python -m benchmarks.eval``, README "Detection quality").
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dedup.embedding.backends.base import LocalModel, last_hidden
from dedup.errors import ModelError, OptionalDependencyError

__all__ = ["OnnxInt8Encoder", "onnx_supported"]

logger = logging.getLogger(__name__)

ONNX_FOLDER = "onnx-int8"
ONNX_VERSION = 1


def onnx_supported(folder: Path) -> str | None:
    """None when ``folder`` can run on ONNX Runtime, else the reason it cannot."""
    return OnnxInt8Encoder.supported(folder)


class OnnxInt8Encoder(LocalModel):
    """A mean-pooled sentence-transformers model from a local folder, int8, on ONNX Runtime.

    Args:
        folder: The sentence-transformers model folder.
        name: The model name; the encoder reports ``name + ":int8"`` (plus the prompt).
        prompt_name: As :class:`dedup.embedding.encoders.SentenceTransformerEncoder`.
        threads: Passages run at once, each on one thread (default: all cores).

    Raises:
        OptionalDependencyError: onnxruntime is not installed.
        ModelError: The folder is not supported or cannot be converted.

    """

    ENGINE = "ONNX Runtime"
    PACKAGE = "onnxruntime"
    FEATURE = "the int8 embedding backend"
    INT8 = True

    def __init__(self, folder: str | Path, name: str, *, prompt_name: str | None = "auto", threads: int | None = None) -> None:
        super().__init__(folder, name, prompt_name=prompt_name)
        ort = self.engine
        path = self._ensure_onnx()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # parallel across passages instead, see encode()
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"ONNX Runtime cannot load {path}: {exc}; delete {path.parent} to rebuild it") from None
        self._inputs = {i.name for i in self._session.get_inputs()}
        # OMP_NUM_THREADS, when set, bounds the cores used (Ray sets it to a worker's CPUs).
        self._workers = int(threads) if threads else _threads()
        self._pool: ThreadPoolExecutor | None = None

    def encode(self, texts: Sequence[str], *, batch_size: int = 1, show_progress: bool = False) -> NDArray[np.float32]:
        """Embed ``texts``, each passage in a request of its own, one request per core at a time.

        Dynamic quantisation scales activations per request, so a passage batched with
        others would get a vector that depends on its neighbours. Alone, a passage always
        gets the same vector, and has no padding to compute; running one passage per core
        keeps both cores busy (2.5x plain sentence-transformers on NTREX passages, against
        1.9x for one passage at a time on two threads and 2.3x, not reproducible, for
        batches of 8). ``batch_size`` is accepted for the :class:`~dedup.embedding.encoders.Encoder`
        protocol and ignored.
        """
        del batch_size
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        bar = self._progress(len(texts), show_progress)

        def run(batch: tuple[list[int], dict[str, NDArray[np.int64]]]) -> int:
            rows, feeds = batch
            hidden = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
            out[rows] = self.pool(hidden, feeds["attention_mask"])
            return len(rows)

        batches = self.token_batches(texts, 1)[::-1]  # longest first: the last ones to finish are short
        done: Iterator[int]
        if self._workers == 1 or len(batches) <= 1:
            done = map(run, batches)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="dedup-onnx")
            done = self._pool.map(run, batches)
        for count in done:
            if bar is not None:
                bar.update(count)
        if bar is not None:
            bar.close()
        return out

    def _ensure_onnx(self) -> Path:
        """The cached int8 model, exported and quantised on first use (atomically)."""
        target = self.folder / ONNX_FOLDER
        return self.build_once(target, "model.onnx", {"onnx_version": ONNX_VERSION}, self._export)

    def _export(self, tmp: Path) -> None:
        try:
            import onnx  # noqa: F401  (torch.onnx and the quantiser need it)
            import onnxruntime.quantization
            import onnxruntime.transformers.optimizer  # noqa: F401
            import torch
        except ImportError as exc:
            raise OptionalDependencyError(exc.name or "onnx", "building the int8 model (once)") from exc
        model = self.torch_model(attn_implementation="eager")
        sample = self.example_feeds()
        example = (torch.from_numpy(sample["input_ids"]), torch.from_numpy(sample["attention_mask"]))
        # The optimiser and quantiser log every fused node and tensor (~150 lines), and advise
        # a pre-processing step that only matters for static quantisation.
        quiet = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            _export_steps(tmp, last_hidden(model), example, model.config)
        finally:
            logging.disable(quiet)
        for name in ("fp32.onnx", "optimised.onnx"):
            (tmp / name).unlink()
        for extra in tmp.glob("*.data"):
            extra.unlink()


def _export_steps(tmp: Path, network: Any, example: Any, config: Any) -> None:  # noqa: ANN401
    """``network`` to ONNX (fp32), then fused by the optimiser, then quantised to int8 weights."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter from the export
        torch.onnx.export(
            network,
            example,
            str(tmp / "fp32.onnx"),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
            opset_version=17,
            dynamo=False,
        )
        optimised = optimize_model(
            str(tmp / "fp32.onnx"),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
        )
        optimised.save_model_to_file(str(tmp / "optimised.onnx"))
        quantize_dynamic(
            str(tmp / "optimised.onnx"),
            str(tmp / "model.onnx"),
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": 1},  # float, for tensors shape inference cannot type
        )


def _threads() -> int:
    """Cores to use: ``OMP_NUM_THREADS`` when it is a positive integer, else every core."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else (os.cpu_count() or 1)
