"""`campaign serve`'s tracking side: click redirects at /c/<token>, the open pixel at /o/<token>.

Never an open redirect: a click token names a send and a link number, and the address comes
from that send's frozen content (engagement.links numbers it as the sender did); a token that
this workspace did not make, a part of one, an open token at /c/ or a click token at /o/ (or an
unsubscribe token at either), or one whose send is gone, is a 404 and records nothing. Each hit
is noted in memory and written in batches (engagement.intake), so a crowd of hits never waits
for the database.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.audience.tokens import Tokens
from pipeline.clock import utcnow
from pipeline.db.engine import Store
from pipeline.engagement.agents import classify
from pipeline.engagement.events import CLICK, OPEN, Event
from pipeline.engagement.intake import INTERVAL, Intake
from pipeline.engagement.tokens import Reading, TrackingTokens
from pipeline.settings.workspace import Workspace

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")  # 1x1, transparent
NO_STORE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer"}
# Characters a Location header may carry as they are; anything else in an address is percent-encoded.
_SAFE = "!#$%&'()*+,-./:;=?@[]_~"
CACHED_SENDS = 256
log = logging.getLogger("campaign.web")


class LinkTables:
    """Each send's link table, worked out from its frozen content once per process."""

    def __init__(self, workspace: Workspace, store: Store, tokens: Tokens) -> None:
        self.workspace = workspace
        self.store = store
        self.tokens = tokens
        self.tables: OrderedDict[int, tuple[str, ...]] = OrderedDict()
        self.lock = threading.Lock()  # the event loop reads, worker threads add

    def cached(self, send_id: int) -> tuple[str, ...] | None:
        """The table if known; None if it has to be looked up."""
        with self.lock:
            table = self.tables.get(send_id)
            if table is not None:
                self.tables.move_to_end(send_id)
            return table

    def load(self, send_id: int) -> tuple[str, ...] | None:
        from pipeline.delivery.frozen import frozen
        from pipeline.delivery.personalise import Personaliser
        from pipeline.delivery.sends import all_sends

        with self.store.reading() as conn:
            send = next((s for s in all_sends(conn) if s.id == send_id), None)
            content = frozen(conn, send_id) if send is not None else None
        if send is None or content is None:
            return None  # not kept: a send that is not there (or not any more) is looked up again
        table = Personaliser(self.workspace, content, send.campaign, self.tokens).links
        with self.lock:
            self.tables[send_id] = table
            while len(self.tables) > CACHED_SENDS:
                self.tables.popitem(last=False)
        return table


def _not_found() -> Response:
    return Response("Not found\n", 404, headers=NO_STORE, media_type="text/plain")


def location(url: str) -> str:
    """An address as a Location header: nothing a header could be broken with."""
    return quote(url, safe=_SAFE)


class TrackingSite:
    """The two routes, over one workspace, database and secret."""

    def __init__(self, workspace: Workspace, store: Store, tokens: Tokens,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.codec = TrackingTokens(tokens.secret)
        self.links = LinkTables(workspace, store, tokens)
        self.intake = Intake(store)
        self.clock = clock

    async def _table(self, send_id: int) -> tuple[str, ...] | None:
        known = self.links.cached(send_id)
        if known is not None:
            return known
        return await run_in_threadpool(self.links.load, send_id)

    def _note(self, kind: str, reading: Reading, request: Request, url: str | None) -> None:
        now = self.clock()
        since = now - reading.sent_at
        agent, machine = classify(kind, request.method, request.headers.get("user-agent", ""),
                                  request.client.host if request.client else None, since)
        self.intake.add(Event(kind, reading.send_id, reading.subscriber_id, reading.link, now,
                              max(int(since.total_seconds()), 0), agent, machine, url))

    async def click(self, request: Request) -> Response:
        reading = self.codec.read(request.path_params["token"])
        if reading is None or reading.link == 0:
            return _not_found()
        table = await self._table(reading.send_id)
        if table is None or reading.link > len(table):
            return _not_found()
        url = table[reading.link - 1]
        self._note(CLICK, reading, request, url)
        return Response(status_code=302, headers={**NO_STORE, "Location": location(url)})

    async def open(self, request: Request) -> Response:
        reading = self.codec.read(request.path_params["token"])
        if reading is None or reading.link != 0 or await self._table(reading.send_id) is None:
            return _not_found()
        self._note(OPEN, reading, request, None)
        return Response(GIF, headers=NO_STORE, media_type="image/gif")

    def routes(self, prefix: str) -> list[Route]:
        return [Route(f"{prefix}/c/{{token}}", self.click, methods=["GET", "HEAD"]),
                Route(f"{prefix}/o/{{token}}", self.open, methods=["GET", "HEAD"])]

    async def keep_writing(self) -> None:
        """Write what came in every INTERVAL (or at once when a batch is full), until cancelled."""
        while True:
            await asyncio.sleep(INTERVAL)
            if self.intake.waiting:
                try:
                    await run_in_threadpool(self.intake.flush)
                except Exception:
                    log.exception("cannot write tracking events; they wait in memory")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The writer, while the server runs; what it holds is written when it stops."""
        writer = asyncio.create_task(self.keep_writing())
        try:
            yield
        finally:
            writer.cancel()
            try:
                await writer
            except asyncio.CancelledError:
                pass
            await run_in_threadpool(self.intake.flush)
