"""The time left that ``dedup`` prints while it embeds, against the time it really took.

Runs ``dedup add --no-cache`` on a JSONL file into a temporary store, with a progress line
every ``--interval`` seconds and stderr piped (the line format, not a bar), stamps each
line as it comes, and prints, for some of them: the passages done, the time left the line
promised (fitted per passage and per character, see :mod:`dedup.progress`), the time left
a plain count rate would promise, and the time the embedding really took from there.

Run: ``python -m benchmarks.progress_eta --data FILE.jsonl [--interval 3]``
(e.g. the first 150 articles of ``ntrex_dev.jsonl``; only the figures are printed).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LINE = re.compile(r"dedup: embedding (\d+)/(\d+) passages, ([\d.]+)/s, eta (?:(\d+)h)?(?:(\d+)m)?(\d+)s")


def main() -> None:
    """Run the measurement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a JSONL file of articles")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between progress lines (default 3)")
    args = parser.parse_args()
    env = {**os.environ, "DEDUP_PROGRESS_INTERVAL": str(args.interval)}
    rows: list[tuple[float, int, int, float, int]] = []
    end = None
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "dedup", "add", "--no-cache", "--store", str(Path(tmp) / "s"), str(args.data)]
        with subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env) as proc:
            assert proc.stderr is not None
            for line in proc.stderr:
                m = LINE.match(line)
                if m:
                    eta = int(m[4] or 0) * 3600 + int(m[5] or 0) * 60 + int(m[6])
                    rows.append((time.monotonic(), int(m[1]), int(m[2]), float(m[3]), eta))
                elif line.startswith("dedup: embedding") and " in " in line:
                    end = time.monotonic()
    if end is None or not rows:
        sys.exit("no progress lines: a larger file, or a smaller --interval")
    print("| passages done | time left promised | by the count rate | really |")
    print("|---|---|---|---|")
    for stamp, done, total, rate, eta in rows[:: max(1, len(rows) // 8)]:
        print(f"| {done}/{total} | {eta} s | {(total - done) / rate:.0f} s | {end - stamp:.0f} s |")


if __name__ == "__main__":
    main()
