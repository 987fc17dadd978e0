"""Listening and serving: the socket, uvicorn, and the deadline on each request's head.

:func:`listen` binds (so the CLI can report the port before serving), :func:`serve` runs the
app on that socket with uvicorn until Ctrl-C or SIGTERM. uvicorn's h11 protocol gets a
deadline on each request head (:func:`_protocol`), so idle or trickling sockets cannot hold
file descriptors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import TYPE_CHECKING

from dedup.errors import ConfigError
from dedup.serve.shared import ServiceLimits

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["is_loopback", "listen", "serve"]

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    return host in ("localhost", "::1") or host.startswith("127.")


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: a free one), for :func:`serve`.

    Raises:
        ConfigError: The port is out of range or the address cannot be bound (in use, no such host).

    """
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be in [0, 65535], got {port}")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another --port or --host)") from None
    return sock


def serve(app: FastAPI, sock: socket.socket, *, limits: ServiceLimits | None = None) -> bool:
    """Run the app with uvicorn on a bound socket until Ctrl-C or SIGTERM (graceful: requests in flight finish).

    Args:
        app: From :func:`create_app`.
        sock: From :func:`listen`.
        limits: The connection timeouts (``keep_alive_s``, ``read_timeout_s``); default: the app's.

    Returns:
        True when a signal stopped it (uvicorn may also re-raise the signal).

    """
    import uvicorn

    limits = limits or getattr(app.state, "limits", None) or ServiceLimits()
    config = uvicorn.Config(
        app,
        http=_protocol(limits.read_timeout_s),
        log_config=None,  # keep the caller's logging
        access_log=False,
        timeout_keep_alive=limits.keep_alive_s,
        timeout_graceful_shutdown=30,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return bool(server.should_exit)


#: Sent, raw, to a client that took too long over a request's head (h11 has no request to answer yet).
_HEAD_TIMEOUT = json.dumps(
    {"error": "request_timeout", "detail": "the request head did not arrive in time", "errors": []}
).encode()
_HEAD_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + f"content-length: {len(_HEAD_TIMEOUT)}\r\n\r\n".encode()
    + _HEAD_TIMEOUT
)


def _protocol(read_timeout_s: float) -> type[asyncio.Protocol]:
    """The h11 protocol of uvicorn, with a deadline on each request's head.

    uvicorn arms its keep-alive timer only after a response, and cancels it on any byte: a
    socket that connects and sends nothing, or trickles a header byte now and then, would
    hold a file descriptor forever. Here, whenever the connection waits for a request head
    (from connecting, or from the first byte of the next request), the head must be complete
    within ``read_timeout_s`` -- a deadline, not reset by more bytes -- or the client gets a
    408 and the connection is closed. While a request is being answered no timer runs (the
    gate bounds the body read; the app's work is not the client's fault).
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadTimeoutProtocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._watch_head()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def _watch_head(self) -> None:
            answering = self.cycle is not None and not self.cycle.response_complete
            if answering or self.transport.is_closing():
                self._stop_head_timer()
            elif self._head_timer is None:
                self._head_timer = self.loop.call_later(read_timeout_s, self._head_timed_out)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                logger.debug("closing a connection that sent no complete request head within %g s", read_timeout_s)
                self.transport.write(_HEAD_TIMEOUT_RESPONSE)
                self.transport.close()

    return HeadTimeoutProtocol
