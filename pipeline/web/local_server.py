"""Serving an ASGI app with uvicorn on a socket bound before anything starts, so a taken port
is a clear one-line error and port 0 picks a free one (the URL says which)."""

from __future__ import annotations

import socket
from typing import Any

import uvicorn

from pipeline.errors import CampaignError
from pipeline.web.http_protocol import TimedH11Protocol

# Seconds a connection may stay idle between requests, and that a client gets to send a complete
# request (see http_protocol): no reader's browser needs more, and slow clients cannot pile up.
TIMEOUT = 5


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, so a taken port is a clear error before anything starts (0: any free port)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        # As every server does: a restarted server may take its port back at once.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()
    except OSError as exc:
        sock.close()
        raise CampaignError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                            "choose another with --host or --port") from None
    return sock


class LocalServer:
    """An app on host:port until Ctrl-C (in the main thread) or stop() (from any thread).

    No access log: the preview has nothing worth logging, and the unsubscribe pages' paths
    carry readers' tokens.
    """

    def __init__(self, app: Any, host: str, port: int, timeout: int = TIMEOUT) -> None:
        self.socket = listen(host, port)
        self._server = self._uvicorn(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on",
                                                    http=TimedH11Protocol, timeout_keep_alive=timeout))

    def _uvicorn(self, config: uvicorn.Config) -> uvicorn.Server:
        return uvicorn.Server(config)

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = self.socket.getsockname()[0]
        return f"http://[{host}]:{self.port}/" if ":" in host else f"http://{host}:{self.port}/"

    @property
    def started(self) -> bool:
        return self._server.started

    def run(self) -> None:
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def stop(self) -> None:
        self._server.should_exit = True
