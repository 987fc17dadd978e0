"""The ``dedup`` command: parser, commands and output (thin: the work is in the stages).

Exit codes:
    0  success (for ``check``: whatever the verdicts)
    1  unexpected internal error (a bug: please report it; one line, no traceback unless DEDUP_DEBUG=1)
    2  usage error or bad input (file, line and value are named)
    3  store error: missing, locked, damaged, or built with another model
    4  model error: the embedding model cannot be built or loaded (or an optional package is missing)
    130  interrupted (Ctrl-C); a store being written keeps its previous state

Every subcommand's ``--help`` ends with the codes it can give. Progress (model loading,
embedding, checking, clustering, Ray stages) goes to stderr: bars on a terminal, else a line
every ``DEDUP_PROGRESS_INTERVAL`` seconds (default 5); ``-q`` silences it.

``stream`` exits 0 when every line was used, 2 when some were rejected (each is reported on
stderr as it comes; the stream goes on), 3 or 4 when the store or the model fails.

:mod:`dedup.cli.parser` defines the arguments, :mod:`dedup.cli.commands` runs each
subcommand, :mod:`dedup.cli.output` prints; :func:`main` maps errors to exit codes.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence

from dedup.cli import commands
from dedup.cli.output import one_line
from dedup.cli.parser import EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_MODEL, EXIT_OK, EXIT_STORE, build_parser
from dedup.errors import ConfigError, DedupError, EngineError, InputError, ModelError, OptionalDependencyError, StoreError
from dedup.progress import configure as configure_progress

__all__ = ["EXIT_INPUT", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_MODEL", "EXIT_OK", "EXIT_STORE", "main"]

NOISY_LOGGERS = ("sentence_transformers", "transformers", "httpx", "huggingface_hub", "faiss", "ray")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dedup`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
        format="dedup: %(message)s",
        stream=sys.stderr,
    )
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    configure_progress(enabled=commands.progress(args))
    if not commands.progress(args) or not sys.stderr.isatty():
        # The libraries' own bars (transformers, huggingface_hub; read when first imported):
        # dedup reports its own progress, and bars are noise in a log.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        return commands.run(args)
    except (InputError, ConfigError) as exc:
        return _fail("error", exc, EXIT_INPUT)
    except StoreError as exc:
        return _fail("store error", exc, EXIT_STORE)
    except OptionalDependencyError as exc:
        return _fail("missing package", exc, EXIT_MODEL)
    except ModelError as exc:
        return _fail("model error", exc, EXIT_MODEL)
    except EngineError as exc:
        return _fail("ray error", exc, EXIT_INTERNAL)
    except DedupError as exc:
        return _fail("error", exc, EXIT_INTERNAL)
    except KeyboardInterrupt:
        print("dedup: interrupted; stores keep their previous state", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader of our output went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # a bug: one line naming it, the traceback only on request
        return _internal(exc)
    finally:
        configure_progress(enabled=False)  # the library is silent again (main may run in a process that goes on)


def _internal(exc: Exception) -> int:
    debug = bool(os.environ.get("DEDUP_DEBUG"))
    if debug:
        traceback.print_exc()
    hint = "" if debug else " (set DEDUP_DEBUG=1 to see the traceback)"
    print(
        f"dedup: internal error: {type(exc).__name__}: {one_line(str(exc))[:500]}; "
        f"this is a bug in dedup, please report it{hint}",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def _fail(kind: str, exc: Exception, code: int) -> int:
    print(f"dedup: {kind}: {one_line(str(exc))}", file=sys.stderr)
    return code
