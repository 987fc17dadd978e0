from __future__ import annotations

from pathlib import Path

from dedup.evaluation.bench_report import markdown
from dedup.evaluation.machine import machine_info

CPUINFO = """processor\t: 0
model name\t: Example CPU @ 2.0GHz
flags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni amx_int8 lm
processor\t: 1
model name\t: Example CPU @ 2.0GHz
flags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni amx_int8 lm
"""


def test_machine_info_reads_the_cpu_model_and_the_flags_that_move_int8(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = machine_info(path)
    assert info["cpu"] == "Example CPU @ 2.0GHz"
    assert info["isa"] == ["avx2", "avx512f", "avx512_vnni", "amx_int8"]  # in ISA_FLAGS order, others dropped
    assert isinstance(info["cpus"], int) and info["cpus"] >= 1


def test_machine_info_without_cpuinfo_still_names_the_platform(tmp_path: Path) -> None:
    info = machine_info(tmp_path / "missing")
    assert info["isa"] == []
    assert info["cpu"]  # platform.processor() or machine(), never empty on a real system
    assert info["python"].count(".") == 2


def test_the_benchmark_report_names_the_machine() -> None:
    text = markdown({"machine": {"cpus": 2, "cpu": "Example CPU", "isa": ["avx2"]}})
    assert "2 cores, Example CPU; int8/bf16 instruction sets: avx2." in text
