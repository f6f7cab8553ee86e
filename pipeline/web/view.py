"""`campaign serve`'s reading side: a reader's own copy of a newsletter, and the public archive.

/view/TOKEN is where "View in your browser" goes when a campaign has no page in the archive: the
copy of the send the token names, made from the send's fixed content for the reader the token
is bound to, through the one personalisation path (delivery.personalise), so it shows what their
message showed. It is theirs alone: never cached, never indexed, and a token that is altered,
made for an erased reader, or for a send that is gone gets the same plain "no page here".

/archive/... serves the folder `campaign archive` last wrote (out/archive), for a practice
without another web host: only files inside it, by paths without ".." or hidden names.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from pipeline.audience.preferences import reader
from pipeline.audience.recipients import of_subscriber
from pipeline.audience.tokens import LinkData
from pipeline.content.build import Content
from pipeline.content.images import stored
from pipeline.delivery.frozen import frozen
from pipeline.delivery.personalise import Personaliser, ViewLink, ViewTokens
from pipeline.delivery.sends import all_sends
from pipeline.web.app import HEADERS, Site
from pipeline.web.archive import default_folder

# The copy shows the email's own images and styles; it runs nothing and posts nowhere.
VIEW_HEADERS = {**HEADERS, "X-Robots-Tag": "noindex, nofollow",
                "Content-Security-Policy": ("default-src 'none'; img-src * data:; style-src 'unsafe-inline' https:; "
                                            "font-src https: data:; base-uri 'none'; form-action 'none'; "
                                            "frame-ancestors 'none'")}
ARCHIVE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=300",
                   "Content-Security-Policy": VIEW_HEADERS["Content-Security-Policy"]}
IMMUTABLE = "public, max-age=31536000, immutable"  # assets/ names carry a hash of their bytes
_TYPES = {".html": "text/html; charset=utf-8", ".xml": "application/xml", ".jpg": "image/jpeg",
          ".png": "image/png", ".gif": "image/gif"}
_CACHED = 32  # sends whose prepared content is kept
_CID = re.compile(r'src="cid:([^"@]+)@[^"]*"')


def archive_file(folder: Path, path: str) -> Path | None:
    """The file `path` names inside folder (a folder's index.html), or None: nothing outside it,
    nothing hidden, no "." or ".." on the way, whatever symlinks say."""
    parts = path.split("/")
    if parts and parts[-1] == "":
        parts = [*parts[:-1], "index.html"]
    if any(not p or p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
        return None
    root = folder.resolve()
    found = (root.joinpath(*parts)).resolve()
    if not found.is_relative_to(root):
        return None
    if found.is_dir():
        found = found / "index.html"
    return found if found.is_file() else None


class ViewSite:
    """The /view and /archive routes over the serve app's workspace, database and secret."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.view_tokens = ViewTokens(site.tokens)
        self.folder = default_folder(site.workspace)
        self._prepared: dict[tuple[str, str], Personaliser] = {}

    def routes(self, prefix: str) -> list[Route]:
        return [Route(f"{prefix}/view/{{token}}", self.view, methods=["GET"]),
                Route(f"{prefix}/view/assets/{{name}}", self.image, methods=["GET"]),
                Route(f"{prefix}/archive", self.archive_root, methods=["GET"]),
                Route(f"{prefix}/archive/{{path:path}}", self.archive, methods=["GET"])]

    def _nothing(self) -> Response:
        # The same answer for every failure: a guessed or altered token learns nothing.
        return HTMLResponse(self.site.pages.error(404), 404, headers=HEADERS)

    def _copy(self, link: ViewLink) -> str | None:
        """The reader's copy of the send the link names, or None if there is no such reader or send."""
        with self.site.store.reading() as conn:
            subscriber = reader(conn, self.site.tokens, LinkData(link.subscriber_id, link.campaign, link.binding))
            if subscriber is None:
                return None
            personaliser = self._prepared.get((link.campaign, link.digest))
            if personaliser is None:
                content = self._content(conn, link)
                if content is None:
                    return None
                if len(self._prepared) >= _CACHED:
                    self._prepared.clear()
                personaliser = Personaliser(self.site.workspace, content, link.campaign, self.site.tokens)
                self._prepared[(link.campaign, link.digest)] = personaliser
        # Images attached to the message ([images] embed) are cid: there; here they come from /view/assets/.
        return _CID.sub(r'src="assets/\1"', personaliser.copy(of_subscriber(subscriber)).html)

    @staticmethod
    def _content(conn: Connection, link: ViewLink) -> Content | None:
        for send in all_sends(conn, link.campaign):
            content = frozen(conn, send.id) if send.snapshot_at is not None else None
            if content is not None and content.digest[:12] == link.digest:
                return content
        return None

    async def view(self, request: Request) -> Response:
        link = self.view_tokens.read(request.path_params["token"])
        html = await run_in_threadpool(self._copy, link) if link is not None else None
        if html is None:
            return self._nothing()
        return HTMLResponse(html, headers=VIEW_HEADERS)

    async def image(self, request: Request) -> Response:
        """One of the articles' processed images, by its name (a hash of its bytes: nobody's data)."""
        data = stored(self.site.workspace, request.path_params["name"])
        if data is None:
            return self._nothing()
        return Response(data, media_type=_TYPES[Path(request.path_params["name"]).suffix],
                        headers={**ARCHIVE_HEADERS, "Cache-Control": IMMUTABLE})

    async def archive_root(self, request: Request) -> Response:
        # The pages' links are relative: they work only below a path that ends in "/".
        return RedirectResponse(f"{request.url.path}/", 301)

    async def archive(self, request: Request) -> Response:
        path = request.path_params["path"]
        found = archive_file(self.folder, path)
        if found is None:
            return self._nothing()
        if found.name == "index.html" and path and not path.endswith(("/", "index.html")):
            return RedirectResponse(f"{request.url.path}/", 301)
        headers = dict(ARCHIVE_HEADERS)
        if path.startswith("assets/"):
            headers["Cache-Control"] = IMMUTABLE
        media = "application/atom+xml" if found.name == "feed.xml" else _TYPES.get(found.suffix.lower())
        return FileResponse(found, headers=headers, media_type=media)
