"""uvicorn's h11 protocol with a deadline on every request, so slow clients cannot hold connections.

uvicorn closes a connection that stays idle after an answer (timeout_keep_alive), but nothing
else: a client that opens a connection and sends nothing, or half a request line, or one byte
of its headers every few seconds, keeps it open for as long as it likes, and a few hundred of
them take every connection a server can hold. Here a client gets timeout_keep_alive seconds
from connecting, and from each answer, to send a complete request (line, headers and body);
otherwise the connection is closed. While the app works on a request nothing is timed.

For uvicorn's command line: --http pipeline.web.http_protocol:TimedH11Protocol --timeout-keep-alive 5
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# The states in which the client has not finished sending its request: before its request line
# and headers are complete, and while its body is still coming.
_RECEIVING = (h11.IDLE, h11.SEND_BODY)


class TimedH11Protocol(H11Protocol):
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_clock()

    def on_response_complete(self) -> None:
        # Before uvicorn goes on to a request the client already pipelined behind this one.
        self._start_clock()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def _start_clock(self) -> None:
        self._stop_clock()
        self._deadline = self.loop.call_later(self.timeout_keep_alive, self._expired)

    def _stop_clock(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing() and self.conn.their_state in _RECEIVING:
            self.transport.close()
