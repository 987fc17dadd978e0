"""Helpers for tests that run ``dedup serve`` in a real process (the fake CLI) on 127.0.0.1."""

from __future__ import annotations

import subprocess
import threading
import time

import httpx


def wait_for_health(url: str, deadline: float) -> None:
    """Poll ``/health`` until it answers 200, failing at ``deadline`` (a ``time.monotonic()`` value)."""
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server does not answer /health"
        time.sleep(0.1)  # polling with a deadline


def served_url(proc: subprocess.Popen[str], deadline: float) -> str:
    """The loopback URL a started ``serve`` logs, once it answers ``/health``; its log keeps being drained."""
    assert proc.stderr is not None
    url = None
    while url is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}")
        if " serving " in f" {line}":
            url = line.split(" on ", 1)[1].split(";", 1)[0]
    assert url is not None and url.startswith("http://127.0.0.1:"), url  # loopback only
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep draining its log
    wait_for_health(url, deadline)
    return url
