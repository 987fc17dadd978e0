"""Store upkeep from the command line: ``dedup compact`` and ``dedup verify``.

Kept apart from :mod:`dedup.cli.parser` and :mod:`dedup.cli.commands`: those register
the two subcommands with :func:`add_parsers` and :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["COMMANDS", "add_parsers"]

_EPILOG = "exit codes: 0 ok, 3 the store or archive is missing, damaged or locked"


def add_parsers(sub: Subparsers) -> None:
    """Register ``compact`` and ``verify`` on the subparsers ``sub``."""
    for name, help_text in (
        ("compact", "merge a store's small segments and fold its newest vectors into the index file (atomic)"),
        ("verify", "check the size and SHA-256 of every file of a store or archive (opens check them lazily)"),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=_EPILOG)
        where = p.add_mutually_exclusive_group(required=True)
        where.add_argument("--store", type=Path, metavar="DIR", help="store directory")
        where.add_argument("--archive", type=Path, metavar="DIR", help="time-sharded archive directory")
        p.add_argument("--json", action="store_true", help="print the report as one JSON object")


def _print(report: dict[str, Any], as_json: bool, line: str) -> None:
    print(json.dumps(report, ensure_ascii=False) if as_json else line, file=sys.stdout)


def _compact(args: argparse.Namespace) -> int:
    from dedup.search.archive import Archive
    from dedup.search.store import Store

    if args.store is not None:
        reports = {"": Store.open(args.store, verify=False).compact()}
    else:
        reports = Archive.open(args.archive).compact()
    before = sum(r.segments_before for r in reports.values())
    after = sum(r.segments_after for r in reports.values())
    folded = sum(r.folded for r in reports.values())
    where = str(args.store or args.archive)
    report = {
        "path": where,
        "segments_before": before,
        "segments_after": after,
        "folded": folded,
        "shards": {key: r.to_dict() for key, r in reports.items() if key},
    }
    _print(report, args.json, f"{where}: {before} segments -> {after}; {folded} vectors folded into the index file")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from dedup.search.archive import Archive
    from dedup.search.store import Store

    if args.store is not None:
        files, size = Store.open(args.store, verify=False).verify()
    else:
        files, size = Archive.open(args.archive, read_only=True, verify=False).verify()
    where = str(args.store or args.archive)
    _print(
        {"path": where, "files": files, "bytes": size, "intact": True},
        args.json,
        f"{where}: {files} files, {size:,} bytes: sizes and SHA-256 checksums match",
    )
    return 0


#: Subcommand name -> the function that runs it and returns the exit code.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"compact": _compact, "verify": _verify}
