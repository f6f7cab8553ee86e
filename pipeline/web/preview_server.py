"""The local web server behind `campaign preview`: the page, the email's parts, and live reload.

Files are watched with watchfiles; each batch of changes rebuilds once and is announced to the
open pages as a server-sent event, on which they reload their frames and panels.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import asdict
from html import escape
from importlib.resources import files
from pathlib import Path
from types import FrameType
from typing import Any

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from watchfiles import DefaultFilter, awatch

from pipeline.content.images import shown_locally
from pipeline.errors import NotFoundError
from pipeline.web.local_server import LocalServer
from pipeline.web.preview import Preview, Snapshot, force_dark, message_headers
from pipeline.web.preview_access import PreviewGuard, allowed_hosts, new_secret

NO_STORE = {"Cache-Control": "no-store"}  # every answer reflects the files as they are now
# How long watchfiles waits for quiet before yielding a batch, and the longest it groups for.
STEP_MS = 50
DEBOUNCE_MS = 500


class Hub:
    """Wakes every open event stream when a rebuild lands or the server is stopping."""

    def __init__(self) -> None:
        self.closed = False
        self._changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self) -> None:
        await self._changed.wait()

    def close(self) -> None:
        self.closed = True
        self.notify()

    def close_threadsafe(self) -> None:
        """Close from a signal handler or another thread."""
        if self._loop is None or self._loop.is_closed():
            self.closed = True
        else:
            self._loop.call_soon_threadsafe(self.close)


async def watch(preview: Preview, on_rebuild: Callable[[], None], stop: asyncio.Event) -> None:
    """Rebuild once per batch of changes to the files the email is made from, until stop is set."""
    ignored = DefaultFilter()  # editor swap files, VCS folders and the like

    def wanted(change: Any, path: str) -> bool:
        return ignored(change, path) and preview.is_watched(Path(path))

    while not stop.is_set():
        roots = preview.watch_roots()
        async with aclosing(awatch(*roots, watch_filter=wanted, stop_event=stop, step=STEP_MS,
                                   debounce=DEBOUNCE_MS)) as batches:
            async for _ in batches:
                await anyio.to_thread.run_sync(preview.rebuild)
                on_rebuild()
                if preview.watch_roots() != roots:
                    break  # an article moved to another folder: watch that one instead


def status(state: Snapshot, recipient: int) -> dict[str, Any]:
    findings = state.build.findings if state.build else []
    errors = sum(f.level == "error" for f in findings)
    return {
        "version": state.version,
        "subject": state.build.settings.subject if state.build else None,
        "error": str(state.error) if state.error else None,
        "recipients": [{"label": r.label, "email": r.email} for r in state.recipients],
        "recipient": recipient,
        "lint": {"errors": errors, "warnings": len(findings) - errors},
    }


def _error_page(message: str) -> str:
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>The email does not build</title>"
            "</head><body style=\"font:15px/1.5 system-ui,sans-serif;margin:24px;color:#7f1d1d\">"
            "<h1 style=\"font-size:20px\">The email does not build</h1>"
            f"<pre class=\"error\" style=\"white-space:pre-wrap\">{escape(message)}</pre>"
            "<p>Fix the file and save it: the preview comes back by itself.</p></body></html>")


Part = Callable[[Snapshot, int], Response]


def create_app(preview: Preview, hub: Hub, recipient: int = 0) -> Starlette:
    """The preview's routes; recipient is the picker's starting choice (an index into the list)."""
    page = files("pipeline.web").joinpath("preview_page.html").read_text(encoding="utf-8")

    def part(render: Part) -> Callable[[Request], Awaitable[Response]]:
        """A route answering with one recipient's copy of the current build, or why there is none."""

        async def endpoint(request: Request) -> Response:
            state = preview.state
            try:
                index = int(request.query_params.get("r", recipient))
                state.recipient(index)
            except ValueError:
                return PlainTextResponse("r must be a recipient number", 400, headers=NO_STORE)
            except NotFoundError as exc:
                return PlainTextResponse(str(exc), 404, headers=NO_STORE)
            if state.build is None:
                message = str(state.error)
                if request.url.path.endswith(".html"):
                    return HTMLResponse(_error_page(message), 503, headers=NO_STORE)
                return PlainTextResponse(message, 503, headers=NO_STORE)
            response = render(state, index)
            response.headers.update(NO_STORE)
            return response

        return endpoint

    def shown(state: Snapshot, html: str) -> str:
        """The articles' own images from this server (below), not from an archive not published yet."""
        return shown_locally(html, state.built()[0].rendered.newsletter.assets)

    def email_html(state: Snapshot, index: int) -> Response:
        return HTMLResponse(shown(state, state.copy(index).html))

    def email_dark_html(state: Snapshot, index: int) -> Response:
        return HTMLResponse(force_dark(shown(state, state.copy(index).html)))

    async def asset(request: Request) -> Response:
        """One of the articles' images, resized as the email carries it."""
        build = preview.state.build
        name = request.path_params["name"]
        found = next((a for a in build.rendered.newsletter.assets if a.name == name), None) if build else None
        if found is None:
            return PlainTextResponse("no such image in the current build", 404, headers=NO_STORE)
        return Response(found.data, media_type=found.media_type, headers=NO_STORE)

    def email_text(state: Snapshot, index: int) -> Response:
        return PlainTextResponse(state.copy(index).text)

    def headers(state: Snapshot, index: int) -> Response:
        return PlainTextResponse(message_headers(state.message(index)))

    def message(state: Snapshot, index: int) -> Response:
        return Response(state.message(index), media_type="message/rfc822")

    def lint(state: Snapshot, index: int) -> Response:
        return JSONResponse({"findings": [asdict(finding) for finding in state.built()[0].findings]})

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers=NO_STORE)

    async def status_json(request: Request) -> Response:
        return JSONResponse(status(preview.state, recipient), headers=NO_STORE)

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            yield "retry: 1000\n\n"  # reconnect quickly when the server restarts
            sent = None
            while not hub.closed:
                state = preview.state
                if state.version != sent:
                    sent = state.version
                    yield f"event: build\ndata: {json.dumps(status(state, recipient))}\n\n"
                await hub.wait()

        return StreamingResponse(stream(), media_type="text/event-stream", headers=NO_STORE)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub.bind(asyncio.get_running_loop())
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(preview, hub.notify, stop))
        # The watcher's first step installs its watches; let it run before the server says it has
        # started, so that no edit made after that moment goes unseen.
        await asyncio.sleep(0)
        try:
            yield
        finally:
            stop.set()
            hub.close()
            await watcher

    routes = [
        Route("/", index),
        Route("/status", status_json),
        Route("/events", events),
        Route("/email.html", part(email_html)),
        Route("/email-dark.html", part(email_dark_html)),
        Route("/email.txt", part(email_text)),
        Route("/headers.txt", part(headers)),
        Route("/message.eml", part(message)),
        Route("/lint.json", part(lint)),
        Route("/assets/{name}", asset),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


class _Uvicorn(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, hub: Hub) -> None:
        super().__init__(config)
        self.hub = hub

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Event streams never end by themselves; uvicorn would wait for them forever on Ctrl-C.
        self.hub.close_threadsafe()
        super().handle_exit(sig, frame)


class PreviewServer(LocalServer):
    """The preview on host:port until Ctrl-C (in the main thread) or stop() (from any thread),
    answering only at its url, which carries a secret made for this run (see preview_access)."""

    def __init__(self, preview: Preview, host: str = "127.0.0.1", port: int = 8025, recipient: int = 0) -> None:
        self.hub = Hub()
        self.guard = PreviewGuard(create_app(preview, self.hub, recipient), new_secret())
        super().__init__(self.guard, host, port)
        self.guard.hosts = allowed_hosts([host, self.socket.getsockname()[0]], self.port)

    @property
    def url(self) -> str:
        return f"{super().url}p/{self.guard.secret}/"

    def _uvicorn(self, config: uvicorn.Config) -> uvicorn.Server:
        return _Uvicorn(config, self.hub)

    def stop(self) -> None:
        self.hub.close_threadsafe()
        super().stop()
