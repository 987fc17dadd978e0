"""What a measurement ran on: cores, CPU model and the instruction sets that move the figures.

The int8 default path's speed, and its vectors in the last decimals, depend on the CPU:
ONNX Runtime's int8 kernels use VNNI or AMX where present, and OpenVINO runs fp32 models
in bf16 on CPUs with native bf16 (AMX, AVX512-BF16). Every benchmark record carries this,
so figures from two machines are not compared as if they came from one.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["ISA_FLAGS", "machine_info"]

#: The CPU flags (as /proc/cpuinfo names them) that change int8 and bf16 speed.
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def _cpuinfo(path: Path) -> tuple[str, list[str]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "", []
    model, flags = "", set[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return model, [f for f in ISA_FLAGS if f in flags]


def machine_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, object]:
    """Cores, platform, Python, CPU model and its int8/bf16-relevant flags (Linux; else empty)."""
    model, flags = _cpuinfo(cpuinfo)
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": model or platform.processor() or platform.machine(),
        "isa": flags,
    }
