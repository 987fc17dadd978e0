"""Connections against a real ``dedup serve`` on 127.0.0.1: idle, silent and trickling sockets cannot starve it.

Each test starts a server process (the fake encoder, a free port, loopback only) with short
timeouts, opens raw sockets, and waits for the server's answer by polling with a deadline.
The server is stopped at the end whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from .conftest import ROOT
from .servers import served_url, wait_for_health

DEADLINE_S = 30


@contextlib.contextmanager
def server(store: Path, *flags: str, max_files: int | None = None) -> Iterator[tuple[str, int]]:
    """A ``dedup serve`` process; yields its URL and port."""

    def limit_files() -> None:
        if max_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files))

    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_cli", "serve", "--store", str(store), "--create", "--port", "0", *flags],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "DEDUP_TOKEN"},
        preexec_fn=limit_files,  # only setrlimit, before exec
    )
    try:
        url = served_url(proc, time.monotonic() + 60)
        yield url, int(url.rsplit(":", 1)[1])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def wait_closed(socks: list[socket.socket], deadline: float, trickle: bool = False) -> dict[socket.socket, bytes]:
    """Read every socket until the server closes it; with ``trickle``, send one header byte per round meanwhile."""
    received = {s: b"" for s in socks}
    open_ = set(socks)
    while open_ and time.monotonic() < deadline:
        readable, _, _ = select.select(list(open_), [], [], 0.2)
        for s in readable:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                data = b""
            received[s] += data
            if not data:
                open_.discard(s)
        if trickle:
            for s in open_ - set(readable):
                with contextlib.suppress(OSError):
                    s.send(b"a")
    assert not open_, f"{len(open_)} of {len(socks)} sockets still open after the deadline"
    return received


def test_silent_sockets_are_closed_after_the_read_timeout_so_they_cannot_exhaust_file_descriptors(tmp_path: Path) -> None:
    # 150 sockets that connect and send nothing, against a server allowed 128 file descriptors.
    with server(tmp_path / "s", "--read-timeout", "1", max_files=128) as (url, port):
        silent = [connect(port) for _ in range(150)]
        try:
            deadline = time.monotonic() + DEADLINE_S
            received = wait_closed(silent, deadline)
            assert all(data.startswith(b"HTTP/1.1 408 ") for data in received.values())
            wait_for_health(url, deadline)  # and the server still answers
        finally:
            for s in silent:
                s.close()


def test_a_request_head_trickled_a_byte_at_a_time_is_cut_at_the_read_timeout(tmp_path: Path) -> None:
    with server(tmp_path / "s", "--read-timeout", "1") as (url, port):
        slow = [connect(port) for _ in range(3)]
        try:
            for s in slow:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            received = wait_closed(slow, time.monotonic() + DEADLINE_S, trickle=True)
            assert all(data.startswith(b"HTTP/1.1 408 ") for data in received.values()), received
            assert httpx.get(f"{url}/health", timeout=5).status_code == 200
        finally:
            for s in slow:
                s.close()


def test_an_idle_keep_alive_connection_is_closed_after_keep_alive(tmp_path: Path) -> None:
    with server(tmp_path / "s", "--keep-alive", "1") as (_, port), connect(port) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        received = wait_closed([s], time.monotonic() + DEADLINE_S)[s]
        assert received.startswith(b"HTTP/1.1 200 ") and received.count(b"HTTP/1.1") == 1


def test_limit_concurrency_counts_requests_not_idle_sockets(tmp_path: Path) -> None:
    with server(tmp_path / "s", "--limit-concurrency", "3") as (url, port):
        idle = [connect(port) for _ in range(6)]  # connected, silent: no request in flight
        try:
            with httpx.Client(base_url=url, timeout=10) as http:
                statuses = [http.get("/stories", headers={"Connection": "close"}).status_code for _ in range(5)]
            assert statuses == [200] * 5
        finally:
            for s in idle:
                s.close()
