"""The package's layout: which stage may import which, and how big a module or function may grow.

The dependency rule (also in ``dedup/__init__.py``'s docstring)::

    types/errors/config/text/io/_fs <- embedding <- search <- verify <- clustering <- detect
        <- serve / browse / cli          (evaluation: imported by cli only)

A module may import modules of its own layer and of lower layers, never of a higher one.
Imports are read with ``ast`` from every ``.py`` under ``dedup/``: module-level ones, those
inside functions and ``if TYPE_CHECKING:`` blocks, and relative ones. Every module must be
placed in a layer below, so a new top-level module or subpackage has to be placed
deliberately. ``benchmarks/`` and ``tests/`` are outside the package and not checked.
"""

from __future__ import annotations

import ast
import doctest
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dedup"

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100

# The layers, lowest first. A key is a module or a package (then it covers everything under it).
# Within the foundation, every module has its own rank, and imports only lower ranks.
FOUNDATION: dict[str, int] = {
    "dedup.errors": 0,
    "dedup.text": 0,
    "dedup.progress": 0,  # progress bars and lines; imports no dedup module
    "dedup.types": 1,  # records; cleaning version and passage splitting from text
    "dedup.config": 1,  # validated settings; raises ConfigError
    "dedup._fs": 1,  # atomic writes, fsync, cache folder; raises errors
    "dedup.langdetect": 1,  # language identification (py3langid, restricted to covered languages)
    "dedup.io": 2,  # readers: builds records, raises InputError
}
FOUNDATION_LAYER = 0
LAYERS: dict[str, int] = {
    **dict.fromkeys(FOUNDATION, FOUNDATION_LAYER),
    "dedup.embedding": 1,
    "dedup.search": 2,
    "dedup.verify": 3,
    "dedup.verify_features": 3,
    "dedup.verify_bound": 3,
    "dedup.clustering": 4,
    "dedup.detect": 5,
    # The package itself: the public API (Detector, Store, Archive, records), built on the stages
    # above; the applications may use it (``from dedup import __version__``), the stages may not.
    "dedup": 6,
    # The applications: one layer. Nothing below cli imports cli, and only cli imports evaluation.
    "dedup.serve": 7,
    "dedup.browse": 7,
    "dedup.cli": 7,
    "dedup.__main__": 7,
    "dedup.evaluation": 7,
}
CLI = ("dedup.cli", "dedup.__main__")
EVALUATION = "dedup.evaluation"


@dataclass(frozen=True)
class Import:
    """One import of a ``dedup`` module: who, what, where."""

    importer: str
    target: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.importer} imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def is_module(name: str) -> bool:
    """Whether ``name`` is a module or package under ``dedup/`` (``dedup.search.store``)."""
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def resolve_relative(importer: str, path: Path, level: int, module: str | None) -> str:
    package = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
    if level - 1 > len(package) - 1:
        raise AssertionError(f"{path}: relative import beyond the package")
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, *(module.split(".") if module else [])])


def imports_of(path: Path, text: str | None = None) -> list[Import]:
    """The imports of ``dedup`` modules in ``path`` (or in ``text``, read as if it were that file), in line order."""
    importer = module_name(path)
    source = path.read_text(encoding="utf-8") if text is None else text
    found: list[Import] = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Import(importer, a.name, path, node.lineno) for a in node.names if is_dedup(a.name)]
        elif isinstance(node, ast.ImportFrom):
            base = resolve_relative(importer, path, node.level, node.module) if node.level else node.module or ""
            if not is_dedup(base):
                continue
            for alias in node.names:
                # `from dedup.browse import web` imports the module dedup.browse.web;
                # `from dedup import Detector` imports the package dedup.
                sub = f"{base}.{alias.name}"
                found.append(Import(importer, sub if alias.name != "*" and is_module(sub) else base, path, node.lineno))
    return sorted(found, key=lambda i: i.line)


def is_dedup(name: str) -> bool:
    return name == "dedup" or name.startswith("dedup.")


def all_imports() -> list[Import]:
    return [imp for path in sources() for imp in imports_of(path)]


def layer_key(module: str) -> str | None:
    """The most specific key of LAYERS that covers ``module``."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS:
            return key
    return None


def group(module: str) -> str:
    """The top-level stage of a module: ``dedup.search.store`` -> ``dedup.search``."""
    return ".".join(module.split(".")[:2])


def within(module: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def layer_violation(imp: Import) -> str | None:
    src, dst = layer_key(imp.importer), layer_key(imp.target)
    if src is None or dst is None:
        return None  # reported by test_every_module_has_a_layer
    if LAYERS[dst] > LAYERS[src]:
        return f"{imp}: layer {LAYERS[src]} ({src}) imports layer {LAYERS[dst]} ({dst})"
    if src in FOUNDATION and dst in FOUNDATION and src != dst and FOUNDATION[dst] >= FOUNDATION[src]:
        ranks = f"{src} (rank {FOUNDATION[src]}) may import lower ranks only, not {dst} (rank {FOUNDATION[dst]})"
        return f"{imp}: within the foundation, {ranks}"
    if within(imp.target, CLI) and not within(imp.importer, CLI):
        return f"{imp}: only the command line imports dedup.cli"
    return None


def test_the_import_scan_sees_every_kind_of_import() -> None:
    """The scanner itself: nested, TYPE_CHECKING, relative and `from package import module` imports."""
    text = (
        "from typing import TYPE_CHECKING\n"
        "import dedup.errors\n"
        "if TYPE_CHECKING:\n    from dedup.detect.detector import Detector\n"
        "def f():\n    from dedup.browse import web\n    from . import index\n    from ..clustering.linkage import x\n"
        "from dedup import Config\n"
    )
    # Read as if it were dedup/search/store.py, so that the relative imports resolve as they would there.
    found = imports_of(PACKAGE / "search" / "store.py", text)
    assert [i.target for i in found] == [
        "dedup.errors",
        "dedup.detect.detector",
        "dedup.browse.web",
        "dedup.search.index",
        "dedup.clustering.linkage",
        "dedup",
    ]
    assert all(i.importer == "dedup.search.store" for i in found)


def test_every_module_has_a_layer() -> None:
    unplaced = sorted({m for m in map(module_name, sources()) if layer_key(m) is None})
    assert not unplaced, f"modules in no layer (add them to LAYERS in tests/test_layout.py, deliberately): {unplaced}"


def test_every_layer_exists() -> None:
    missing = sorted(key for key in LAYERS if not is_module(key))
    assert not missing, f"LAYERS names modules that do not exist (update tests/test_layout.py): {missing}"


def test_layers_import_only_their_own_and_lower_layers() -> None:
    violations = sorted({v for imp in all_imports() if (v := layer_violation(imp))})
    assert not violations, f"{len(violations)} import(s) break the layer rule:\n" + "\n".join(violations)


def test_only_the_cli_imports_evaluation() -> None:
    offenders = sorted(
        str(imp) for imp in all_imports() if within(imp.target, EVALUATION) and not within(imp.importer, (EVALUATION, *CLI))
    )
    assert not offenders, "dedup.evaluation is for the command line only:\n" + "\n".join(offenders)


def test_importing_dedup_loads_no_evaluation_nor_benchmarks() -> None:
    code = "import dedup, sys; print(sorted(m for m in sys.modules if m.startswith(('dedup.evaluation', 'benchmarks'))))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"`import dedup` loaded: {done.stdout.strip()}"


def test_no_module_over_the_line_limit() -> None:
    offenders = sorted(
        (n, str(path.relative_to(ROOT)))
        for path in sources()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    )
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(f"{p}: {n}" for n, p in reversed(offenders))


def test_no_function_over_the_line_limit() -> None:
    offenders: list[tuple[int, str]] = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno is not None
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                n = node.end_lineno - first + 1
                if n > MAX_FUNCTION_LINES:
                    offenders.append((n, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    offenders.sort(reverse=True)
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(f"{w}: {n}" for n, w in offenders)


def test_the_package_does_not_name_the_development_data() -> None:
    """Development data (../shared/data) is for benchmarks and tests; the package never names it."""
    offenders = [
        f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
        for path in sorted(p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if "shared/data" in line
    ]
    assert not offenders, "dedup/ names the development data folder:\n" + "\n".join(offenders)


def test_the_package_docstring_example_runs() -> None:
    import dedup

    result = doctest.testmod(dedup, verbose=False, report=False)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize(
    ("importer", "target", "ok"),
    [
        ("dedup.io", "dedup.types", True),
        ("dedup.types", "dedup.io", False),
        ("dedup.types", "dedup.config", False),
        ("dedup.search.store", "dedup.embedding.backends.onnx", True),
        ("dedup.search.archive", "dedup.detect.detector", False),
        ("dedup.clustering.batch", "dedup.verify", True),
        ("dedup.serve.http", "dedup.browse.views", True),
        ("dedup.browse.report", "dedup.cli.commands", False),
        ("dedup.cli.commands", "dedup.serve.http", True),
        ("dedup.detect.detector", "dedup", False),
        ("dedup.browse.report", "dedup", True),
    ],
)
def test_the_rule_itself(importer: str, target: str, ok: bool) -> None:
    imp = Import(importer, target, PACKAGE / "x.py", 1)
    assert (layer_violation(imp) is None) is ok
