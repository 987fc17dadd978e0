"""Building blocks of the ``dedup`` parser: value types, the :class:`Parser`, the shared flag groups.

Subcommands (:mod:`dedup.cli.parser`) opt into the flag groups they need, one line each:
:func:`model_options` (model, backend, cache), :func:`decision_options` (threshold, date
gap, candidates), :func:`reading_options` (article size, malformed records),
:func:`index_options` (a store's vector index), :func:`quiet`, and the small ones below.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from dedup.config import BACKENDS, INDEX_KINDS, Config
from dedup.io import JSONL_SUFFIXES, STDIN, TEXT_SUFFIXES

__all__ = [
    "INPUTS_HELP",
    "Parser",
    "decision_options",
    "index_options",
    "input_path",
    "inputs",
    "integer",
    "json_flag",
    "model_options",
    "number",
    "out_dir",
    "quiet",
    "reading_options",
    "store_or_archive",
    "top",
]

INPUTS_HELP = "JSONL files (.jsonl, .ndjson, .json), seed-format .txt files, folders of them, or - for stdin"


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high], refused at parse time (exit 2) with the value named."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # also an integer with more digits than Python converts
            raise argparse.ArgumentTypeError(f"expected an integer, got {text[:40]!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"at least {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def number(low: float = -math.inf, high: float = math.inf, *, above: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high] (or > ``above``); nan and inf are refused at parse time."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text[:40]!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text[:40]!r}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be more than {above:g}, got {value:g}")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low:g}, {high:g}], got {value:g}")
        return value

    parse.__name__ = "number"
    return parse


def input_path(text: str) -> str:
    """An argparse type: an input file, folder or ``-``; a file of another extension is refused with a hint.

    A missing path passes (the reader names it); a folder passes (the reader takes its
    ``.txt`` and ``.jsonl`` files).
    """
    if text == STDIN:
        return text
    path = Path(text)
    if path.is_dir() or (not path.exists() and not path.suffix):
        return text
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES | TEXT_SUFFIXES:
        return text
    what = f"extension {suffix!r}" if suffix else "no extension"
    raise argparse.ArgumentTypeError(
        f"{text!r} has {what}: dedup reads {', '.join(sorted(JSONL_SUFFIXES))} (JSON lines) and .txt (seed format); "
        "convert it (a CSV: one JSON object per row), or rename it if it is one of those"
    )


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors show the usage of the subcommand they concern.

    Plain argparse reports a subcommand's unknown flag with the top-level usage; here
    ``dedup cluster --bogus`` shows ``dedup cluster``'s usage (exit 2).
    """

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """Parse ``args``; unknown arguments are reported by the subcommand's parser."""
        argv = list(sys.argv[1:] if args is None else args)
        name = next((a for a in argv if not a.startswith("-")), None)
        command = self.subcommand(name)
        if command is not None:
            # Before parsing: else the value of an unknown flag is taken for an input
            # (`add --threshold 0.5 f.jsonl` would complain about a file named 0.5).
            for token in argv[argv.index(str(name)) + 1 :]:
                if token == "--":
                    break
                if _unknown_option(command, token):
                    command.error(f"unrecognized arguments: {token} (see `dedup {name} --help` for its flags)")
        parsed, extras = self.parse_known_args(argv, namespace)
        if extras:
            command = self.subcommand(getattr(parsed, "command", None))
            (command or self).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def subcommand(self, name: str | None) -> argparse.ArgumentParser | None:
        """The parser of subcommand ``name`` (None when there is none)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and name in action.choices:
                found: argparse.ArgumentParser = action.choices[name]
                return found
        return None


def _unknown_option(parser: argparse.ArgumentParser, token: str) -> bool:
    """Whether ``token`` looks like a flag that ``parser`` does not know (abbreviations count as known)."""
    if not token.startswith("-") or token == "-" or _NEGATIVE.match(token):
        return False
    known = parser._option_string_actions
    if token.startswith("--"):
        flag = token.split("=", 1)[0]
        return not any(option.startswith(flag) for option in known if option.startswith("--"))
    return token[:2] not in known


_NEGATIVE = re.compile(r"^-\d+$|^-\d*\.\d+$")


class _Moved(argparse.Action):
    """A flag that was renamed: using it is a usage error (exit 2) naming the new flag."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, hint: str, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=1, help=argparse.SUPPRESS, **kwargs)
        self.hint = hint

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object, option_string: str | None = None
    ) -> NoReturn:
        parser.error(f"{option_string} {self.hint}")


def model_options(p: argparse.ArgumentParser, *, cache: bool = True) -> None:
    """``--model``, ``--backend`` and (where an embedding cache is used) ``--no-cache``."""
    add = p.add_argument
    add("--model", help=f"embedding model: the offline default {Config.model!r}, a sentence-transformers name or a local folder")
    add(
        "--backend",
        choices=BACKENDS,
        help="how the model runs: auto (the default model: int8 on ONNX Runtime; other local mean-pooled "
        "models: OpenVINO; else torch), onnx-int8, openvino (fp32), torch (plain sentence-transformers)",
    )
    if cache:
        add("--no-cache", action="store_true", help="do not use the embedding cache ($DEDUP_CACHE_DIR or ~/.cache/dedup)")


def decision_options(p: argparse.ArgumentParser, *, threshold_help: str | None = None) -> None:
    """``--threshold`` (its help may be the subcommand's), ``--max-date-gap``, ``--candidates``: the decision."""
    add = p.add_argument
    add("--threshold", type=number(), help=threshold_help or f"duplicate score threshold in [0, 1] (default {Config.threshold})")
    add(
        "--max-date-gap",
        type=int,
        metavar="DAYS",
        help=f"articles further apart are never one story (default {Config.max_date_gap_days})",
    )
    add(
        "--candidates",
        type=int,
        metavar="K",
        help=f"stored articles retrieved per query for verification (default {Config.candidates})",
    )


def reading_options(p: argparse.ArgumentParser, *, skip: bool = True) -> None:
    """``--max-chars`` and (for files read at once) ``--skip-invalid``."""
    p.add_argument("--max-chars", type=int, metavar="N", help=f"refuse longer articles (default {Config.max_article_chars:,})")
    if skip:
        p.add_argument(
            "--skip-invalid", action="store_true", help="skip malformed input records with a warning instead of failing"
        )


def index_options(p: argparse.ArgumentParser, *, floor_only: bool = False) -> None:
    """A store's vector index: ``--index`` and ``--recall-floor``."""
    if not floor_only:
        p.add_argument(
            "--index",
            choices=INDEX_KINDS,
            help="vector index of a store (default: keep the store's; auto for a new one: exact below 20,000 "
            "articles, then IVF tuned to --recall-floor); takes effect at the next add",
        )
    p.add_argument(
        "--recall-floor",
        type=number(),
        metavar="R",
        help=f"recall@10 against exact search an approximate index must reach (default {Config.recall_floor})",
    )


def quiet(p: argparse.ArgumentParser) -> None:
    """``-q/--quiet``: no progress, no info messages."""
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or lines, no info messages")


def inputs(p: argparse.ArgumentParser, metavar: str = "INPUT", help_text: str = INPUTS_HELP) -> None:
    """The input files (one or more), their extensions checked by :func:`input_path`."""
    p.add_argument("inputs", nargs="+", type=input_path, metavar=metavar, help=help_text)


def json_flag(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--json``: machine output instead of text."""
    p.add_argument("--json", action="store_true", help=help_text)


def out_dir(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--out-dir DIR``; the old ``--out`` (a file everywhere else) is refused with a hint."""
    p.add_argument("--out-dir", type=Path, metavar="DIR", help=help_text)
    p.add_argument("--out", action=_Moved, hint="is now --out-dir DIR here (a folder); --out names a file (dedup cluster)")


def store_or_archive(p: argparse.ArgumentParser) -> None:
    """``--store DIR`` or ``--archive DIR``, one of them required."""
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", type=Path, metavar="DIR", help="store directory")
    where.add_argument(
        "--archive", type=Path, metavar="DIR", help="time-sharded archive directory: one store per month, plus undated"
    )


def top(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--top K``: near misses to list too."""
    p.add_argument("--top", type=integer(0), default=0, metavar="K", help=help_text)
