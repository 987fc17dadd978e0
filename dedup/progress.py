"""Progress of long work: a bar on a terminal, a line every few seconds elsewhere, nothing when quiet.

The library is silent by default; the ``dedup`` command turns progress on (:func:`configure`)
unless ``-q``. The stages report through :func:`track` (work that can be counted: passages
embedded, articles verified, windows clustered) and :func:`stage` (work that cannot: loading
a model, a Ray stage). Where it goes depends on stderr:

- a terminal: a tqdm bar, shown once the work has lasted a second;
- anything else (a log file, CI, cron): one line every ``DEDUP_PROGRESS_INTERVAL`` seconds
  (default 5), e.g. ``dedup: embedding 1200/5000 passages, 85/s, eta 45s``, and a closing
  line for work that printed any.

The estimate is honest for work of uneven size. A task may give each update a weight (the
characters of the passages just embedded); the time of each step is then fitted, over the
whole run so far, as a cost per unit plus a cost per character (least squares), and the
time left is that cost of the units and characters still to do. Passages are embedded
sorted by length, so a count-based rate promises an end far too early (measured: 79 s
left, when 147 s remained), and characters alone, far too late (444 s): a short passage
costs more than its characters. Before three steps, the time left is the time so far
times the share of the weight still to do.

Examples:
    >>> configure(enabled=False)
    >>> with track("embedding", total=3, unit="passage") as bar:
    ...     bar.update(2)
    ...     bar.update(1)
    >>> bar.done
    3

"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["ENV_INTERVAL", "Tracker", "configure", "enabled", "stage", "track"]

#: Environment variable: seconds between progress lines when stderr is not a terminal.
ENV_INTERVAL = "DEDUP_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 5.0
#: A bar appears only for work that lasts longer than this (no flash for one article).
BAR_DELAY = 1.0


@dataclass
class _Settings:
    enabled: bool = False
    stream: IO[str] | None = None  # None: sys.stderr at the time of use (tests swap it)


_settings = _Settings()


def configure(*, enabled: bool, stream: IO[str] | None = None) -> None:
    """Turn progress reports on or off for this process (the ``dedup`` command: on, unless ``-q``)."""
    _settings.enabled = enabled
    _settings.stream = stream


def enabled() -> bool:
    """Whether progress is reported unless a caller asks for it explicitly."""
    return _settings.enabled


def interval() -> float:
    """Seconds between progress lines without a terminal: ``$DEDUP_PROGRESS_INTERVAL``, else 5."""
    raw = os.environ.get(ENV_INTERVAL, "")
    try:
        value = float(raw) if raw else DEFAULT_INTERVAL
    except ValueError:
        return DEFAULT_INTERVAL
    return value if math.isfinite(value) and value >= 0 else DEFAULT_INTERVAL


def _stream() -> IO[str]:
    return _settings.stream or sys.stderr


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


def duration(seconds: float) -> str:
    """``45s``, ``12m05s``, ``3h02m``: short, for progress lines.

    Examples:
        >>> duration(44.6), duration(725), duration(10930)
        ('45s', '12m05s', '3h02m')

    """
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _rate(count: float, seconds: float) -> str:
    per = count / seconds if seconds > 0 else 0.0
    return f"{per:.0f}/s" if per >= 10 else f"{per:.2g}/s"


class Tracker:
    """One counted task in progress: ``update`` as work is done, ``close`` (or ``with``) at the end.

    Args:
        desc: What is done, e.g. ``"embedding"``.
        total: How many units there are (None when unknown).
        unit: The unit, singular (``"passage"``); an ``s`` is added for counts.
        weight: The total weight (e.g. characters), for the time left; None: the count.
        show: Report at all (a silent tracker only counts).
        clock: Seconds, monotonic (tests give their own).

    """

    def __init__(
        self,
        desc: str,
        total: int | None,
        unit: str,
        *,
        weight: float | None = None,
        show: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self._clock = clock
        self.done = 0
        self._weight_total = float(weight) if weight is not None else (float(total) if total is not None else None)
        self._weight_done = 0.0
        self._steps: list[tuple[float, float, float]] = []  # (units, weight, seconds) of each update
        self._last_update = clock()
        self._started = clock()
        self._stream = _stream()
        self._interval = interval()
        self._last_line = self._started
        self._lines = 0
        self._bar: Any = None
        self._show = show
        if show and _is_terminal(self._stream):
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total,
                desc=desc,
                unit=f" {unit}s",
                file=self._stream,
                delay=BAR_DELAY,
                smoothing=0,  # the rate over the whole run; the time left is ours (see eta)
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_noinv_fmt}{postfix}]"
                if total
                else "{desc}: {n_fmt}{unit} [{elapsed}, {rate_noinv_fmt}]",
                dynamic_ncols=True,
            )

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def eta(self) -> float | None:
        """Seconds left (None when unknown): the fitted cost of what is left (see the module's docstring)."""
        if not self._weight_total or self._weight_done <= 0:
            return None
        left = max(0.0, self._weight_total - self._weight_done)
        fit = _fit(self._steps[1:] if len(self._steps) > 3 else self._steps)  # the first step holds the warm-up
        if fit is not None and self.total is not None:
            per_unit, per_weight = fit
            return per_unit * max(0, self.total - self.done) + per_weight * left
        elapsed = self._clock() - self._started
        return elapsed * left / self._weight_done

    def update(self, n: int = 1, *, weight: float | None = None) -> None:
        """``n`` more units done, weighing ``weight`` (default ``n``)."""
        self.done += n
        self._weight_done += float(n) if weight is None else float(weight)
        now = self._clock()
        self._steps.append((float(n), float(n) if weight is None else float(weight), now - self._last_update))
        self._last_update = now
        if not self._show:
            return
        if self._bar is not None:
            eta = self.eta()
            running = eta is not None and self.total and self.done < self.total
            self._bar.set_postfix_str(f"eta {duration(eta)}" if running and eta is not None else "", refresh=False)
            self._bar.update(n)
            return
        now = self._clock()
        if now - self._last_line >= self._interval and (self.total is None or self.done < self.total):
            self._last_line = now
            self._lines += 1
            self._print(self.line())

    def line(self) -> str:
        """The progress line: ``embedding 1200/5000 passages, 85/s, eta 45s``."""
        elapsed = self._clock() - self._started
        count = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        eta = self.eta()
        left = f", eta {duration(eta)}" if eta is not None and self.total is not None and self.done < self.total else ""
        return f"{self.desc} {count} {self.unit}s, {_rate(self.done, elapsed)}{left}"

    def close(self) -> None:
        """End the task: close the bar, or write a closing line if progress lines were written."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._show and self._lines:
            self._lines = 0
            elapsed = self._clock() - self._started
            self._print(f"{self.desc} {self.done} {self.unit}s in {duration(elapsed)}, {_rate(self.done, elapsed)}")

    def _print(self, text: str) -> None:
        _quiet_print(self._stream, f"dedup: {text}")


def _fit(steps: Sequence[tuple[float, float, float]]) -> tuple[float, float] | None:
    """Least squares ``seconds = a * units + b * weight`` over the steps, ``a, b >= 0``; None before 3 steps.

    Examples:
        >>> _fit([(10, 100, 2.0), (10, 300, 4.0), (10, 500, 6.0)])  # 0.1 s a unit, 0.01 s a character
        (0.1, 0.01)

    """
    if len(steps) < 3:
        return None
    nn = sum(n * n for n, _, _ in steps)
    nw = sum(n * w for n, w, _ in steps)
    ww = sum(w * w for _, w, _ in steps)
    nt = sum(n * t for n, _, t in steps)
    wt = sum(w * t for _, w, t in steps)
    det = nn * ww - nw * nw
    if nn <= 0 or ww <= 0:
        return None
    if det > 1e-9 * nn * ww:
        a, b = (nt * ww - wt * nw) / det, (wt * nn - nt * nw) / det
        if a >= 0 and b >= 0:
            return round(a, 12), round(b, 12)
    # Collinear steps, or a negative cost: the better of the two one-term fits.
    a_only, b_only = nt / nn, wt / ww
    error_a = sum((t - a_only * n) ** 2 for n, _, t in steps)
    error_b = sum((t - b_only * w) ** 2 for _, w, t in steps)
    return (max(a_only, 0.0), 0.0) if error_a <= error_b else (0.0, max(b_only, 0.0))


def track(desc: str, total: int | None, unit: str, *, weight: float | None = None, show: bool | None = None) -> Tracker:
    """A :class:`Tracker`, reporting if ``show`` (None: if progress is :func:`enabled`)."""
    return Tracker(desc, total, unit, weight=weight, show=enabled() if show is None else show)


@contextmanager
def stage(desc: str, *, show: bool | None = None) -> Iterator[None]:
    """Work that cannot be counted (loading a model, a Ray stage): its elapsed time while it lasts.

    On a terminal, a bar-less line with the time elapsed, shown after a second; elsewhere,
    ``dedup: loading model X ... 10s`` every interval, and ``... done in 12s`` if any was printed.
    """
    show = enabled() if show is None else show
    if not show:
        yield
        return
    stream, every = _stream(), interval()
    finished = threading.Event()
    started = time.monotonic()
    bar: Any = None
    if _is_terminal(stream):
        from tqdm.auto import tqdm

        bar = tqdm(total=None, desc=desc, file=stream, delay=BAR_DELAY, bar_format="{desc} ... {elapsed}")
        every = 0.5
    printed = 0

    def beat() -> None:
        nonlocal printed
        while not finished.wait(max(every, 0.05)):
            if bar is not None:
                bar.refresh()
                continue
            printed += 1
            _quiet_print(stream, f"dedup: {desc} ... {duration(time.monotonic() - started)}")

    thread = threading.Thread(target=beat, name="dedup-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        finished.set()
        thread.join()
        if bar is not None:
            bar.close()
        elif printed:
            _quiet_print(stream, f"dedup: {desc}: done in {duration(time.monotonic() - started)}")


def _quiet_print(stream: IO[str], text: str) -> None:
    """Write a line; a closed or broken stderr is never worth failing for."""
    with suppress(OSError, ValueError):
        stream.write(text + "\n")
        stream.flush()
