"""`campaign serve`: the public unsubscribe and preferences pages that every email links to.

A GET never changes anything, because link scanners and mail previews fetch every URL in a
message. Changes come only by POST: a mail client's one-click unsubscribe (RFC 8058), the
button on the confirmation page, and the preferences form. The last two must come from our
own pages (see from_our_page); unsubscribes never wait for SQLite's write lock (see
audience.unsubscribe_journal).

For a production server, `create_app` is an app factory:
    CAMPAIGN_WORKSPACE=/srv/clinic uvicorn --factory pipeline.web.app:create_app --port 8080 \\
        --http pipeline.web.http_protocol:TimedH11Protocol --timeout-keep-alive 5 --no-access-log
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy.engine import Connection
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from pipeline.audience import preferences
from pipeline.audience.subscribers import Subscriber
from pipeline.audience.tokens import LinkData, Tokens
from pipeline.audience.unsubscribe_journal import Unsubscribes
from pipeline.db.engine import Store, default_url
from pipeline.errors import InvalidToken
from pipeline.settings.workspace import Workspace, load_workspace
from pipeline.web.pages import Pages

HEADERS = {
    "Cache-Control": "no-store",  # each page shows one reader's data, as it is now
    "X-Robots-Tag": "noindex",
    # The token in the URL must not travel to the brand's website, or anywhere else, as a Referer.
    # Not no-referrer: under it browsers send "Origin: null" with the page's own forms, which
    # from_our_page could not tell from a forged one.
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                "base-uri 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
}
MAX_FORM = 64 * 1024  # the forms hold a few topic names; a larger body is not one of ours
# While unsubscribes are journaled: how long each try waits for the write lock, and how often the
# journal is looked at anyway (entries another worker process or an earlier run left).
RETRY_WAIT = 1.0
POLL_SECONDS = 2.0
log = logging.getLogger("campaign.web")

Form = dict[str, list[str]]
T = TypeVar("T")


def parse_form(content_type: str, body: bytes) -> Form:
    """The fields of a form body. RFC 8058 lets mail clients send one-click unsubscribes as
    multipart/form-data or urlencoded; anything unreadable gives no fields."""
    form: Form = {}
    if content_type.split(";")[0].strip().lower() == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
        message = email.message_from_bytes(head + body, policy=email.policy.HTTP)
        for part in message.iter_parts() if message.is_multipart() else ():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                form.setdefault(name, []).append(payload.decode("utf-8", "replace"))
        return form
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(name, []).append(value)
    return form


Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin | None:
    """An http(s) URL's origin as (scheme, host, port), the port filled in; None for anything
    else, "null" (what sandboxed frames and some redirects send) included."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def from_our_page(request: Request, ours: Origin | None) -> bool:
    """Whether a form POST may have come from one of our pages (not from another site's page
    that submits a form to a reader's link).

    Its Origin header, or without one its Referer, must name the origin of [unsubscribe]
    base_url or the origin the request was sent to (its scheme and Host header: the same site,
    however a proxy in front is set up). Neither header (old clients, privacy settings that strip
    both) is accepted: the token in the URL still binds the change to one reader.
    """
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if claimed is None:
        return True
    origin = origin_of(claimed)
    return origin is not None and origin in (ours, origin_of(str(request.base_url)))


def _page(html: str, status: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(html, status, headers={**HEADERS, **(headers or {})})


class Site:
    """The pages' request handlers over one workspace, database and token secret."""

    def __init__(self, workspace: Workspace, store: Store, tokens: Tokens) -> None:
        self.workspace = workspace
        self.store = store
        self.tokens = tokens
        self.pages = Pages(workspace)
        self.origin = origin_of(workspace.unsubscribe_url)
        self.unsubscribes = Unsubscribes(store, tokens)
        self.journaled = asyncio.Event()  # set when an unsubscribe is left pending in the journal

    def _link(self, request: Request) -> LinkData | None:
        try:
            return self.tokens.read(request.path_params["token"])
        except InvalidToken:
            return None

    async def _read(self, link: LinkData) -> Subscriber | None:
        def look_up() -> Subscriber | None:
            with self.store.reading() as conn:
                return preferences.reader(conn, self.tokens, link)

        return await run_in_threadpool(look_up)

    async def _write(self, change: Callable[[Connection], T]) -> T:
        def run() -> T:
            with self.store.transaction() as conn:
                return change(conn)

        return await run_in_threadpool(run)

    async def _form(self, request: Request) -> Form:
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_FORM:
                    raise HTTPException(413)
        except ClientDisconnect:
            # Gone before sending it all (or closed for being too slow): no one reads the answer, and
            # it is no error of ours to log.
            raise HTTPException(400) from None
        return parse_form(request.headers.get("content-type", ""), bytes(body))

    async def _unsubscribe(self, link: LinkData, source: str) -> Response:
        subscriber, pending = await run_in_threadpool(self.unsubscribes.unsubscribe, link, source)
        if pending:
            self.journaled.set()
        return _page(self.pages.unsubscribed(subscriber))

    def _invalid(self) -> Response:
        return _page(self.pages.invalid_link(), 400)

    def _refused(self) -> Response:
        return _page(self.pages.refused(), 403)

    async def unsubscribe(self, request: Request) -> Response:
        link = self._link(request)
        if link is None:
            return self._invalid()
        if request.method == "POST":
            # The confirmation page's form says confirm; everything else that POSTs here is a mail
            # client's unsubscribe button, whatever its body looks like (and whatever its Origin:
            # the provider's servers send it, or a webmail page on the provider's site).
            if "confirm" not in await self._form(request):
                return await self._unsubscribe(link, preferences.ONE_CLICK)
            if not from_our_page(request, self.origin):
                return self._refused()
            return await self._unsubscribe(link, preferences.CONFIRM)
        subscriber = await self._read(link)
        if subscriber is None or subscriber.status != "subscribed":
            return _page(self.pages.unsubscribed(subscriber))
        # Relative, so the link works at whatever path a reverse proxy serves these pages.
        return _page(self.pages.confirm(subscriber, f"../preferences/{request.path_params['token']}"))

    async def preferences(self, request: Request) -> Response:
        link = self._link(request)
        if link is None:
            return self._invalid()
        topics = self.workspace.topics
        saved = request.method == "POST"
        if saved:
            form = await self._form(request)
            if not from_our_page(request, self.origin):
                return self._refused()
            if form.get("action") == ["unsubscribe"]:
                return await self._unsubscribe(link, preferences.PREFERENCES)
            chosen = form.get("topic", [])
            change = await self._write(lambda conn: preferences.choose_topics(conn, self.tokens, link, topics, chosen))
            subscriber = change.subscriber
        else:
            subscriber = await self._read(link)
        if subscriber is None or subscriber.status != "subscribed":
            return _page(self.pages.unsubscribed(subscriber))
        return _page(self.pages.preferences(subscriber, topics, saved))

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        headers = exc.headers if isinstance(exc, HTTPException) else None
        return _page(self.pages.error(status), status, headers)

    async def keep_applying(self) -> None:
        """Apply journaled unsubscribes as soon as the write lock frees, until cancelled."""
        while True:
            try:
                await asyncio.wait_for(self.journaled.wait(), POLL_SECONDS)
            except TimeoutError:
                pass
            self.journaled.clear()
            try:
                while not await run_in_threadpool(self.unsubscribes.apply, RETRY_WAIT):
                    pass  # each try waited RETRY_WAIT for the lock: try again at once
            except Exception:
                # The entries stay in the journal, and the senders apply them too: try again later.
                log.exception("cannot apply the journaled unsubscribes")
                await asyncio.sleep(POLL_SECONDS)


def base_path(workspace: Workspace) -> str:
    """The path of [unsubscribe] base_url: "/email" for https://clinic.example/email."""
    return urlsplit(workspace.unsubscribe_url).path.rstrip("/")


def create_app(workspace: Workspace | None = None, store: Store | None = None,
               tokens: Tokens | None = None, transport: str | None = None) -> Starlette:
    """The pages as an ASGI app.

    Called with no arguments, as `uvicorn --factory pipeline.web.app:create_app` does, it reads the
    workspace named by CAMPAIGN_WORKSPACE (default: the current folder), the database named by
    CAMPAIGN_DB (default: its campaign.db) and the secret that signed the links (CAMPAIGN_SECRET
    or the workspace's .campaign-secret), and closes the database when the server stops. The
    signup form's confirmation emails go through `transport` (default: CAMPAIGN_TRANSPORT, else
    maildir:outbox in the workspace).
    """
    workspace = workspace or load_workspace(Path(os.environ.get("CAMPAIGN_WORKSPACE") or "."))
    owned = store is None
    store = store or Store(os.environ.get("CAMPAIGN_DB") or default_url(workspace.root))
    site = Site(workspace, store, tokens or Tokens.of_workspace(workspace.root))
    # Imported here, not at the top: the signup side builds on this module's helpers.
    from pipeline.web.signup import SignupSite

    signup = SignupSite(site, transport or os.environ.get("CAMPAIGN_TRANSPORT"))
    from pipeline.web.tracking import TrackingSite

    tracking = TrackingSite(workspace, store, site.tokens)
    from pipeline.web.view import ViewSite

    viewing = ViewSite(site)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        applying = asyncio.create_task(site.keep_applying()) if site.unsubscribes.journal else None
        try:
            async with tracking.running():  # opens and clicks are written in batches meanwhile
                yield
        finally:
            if applying is not None:
                applying.cancel()
                try:
                    await applying
                except asyncio.CancelledError:
                    pass
            if owned:
                store.close()

    # The pages answer both at the root and under base_url's path, so a reverse proxy may pass
    # https://clinic.example/email/unsubscribe/... through as it is or with /email taken off.
    routes = []
    for prefix in dict.fromkeys(["", base_path(workspace)]):
        routes += [Route(f"{prefix}/unsubscribe/{{token}}", site.unsubscribe, methods=["GET", "POST"]),
                   Route(f"{prefix}/preferences/{{token}}", site.preferences, methods=["GET", "POST"])]
        routes += signup.routes(prefix)  # /subscribe, when campaign.toml has [signup]
        routes += tracking.routes(prefix)  # /c/ and /o/: click redirects and the open pixel
        routes += viewing.routes(prefix)  # /view/: a reader's own copy; /archive/: the built archive
    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={HTTPException: site.http_error, Exception: site.http_error})
