"""`campaign serve`'s signup form over HTTP: GET /subscribe shows it; POST /subscribe takes it, as
a form or as JSON, from our own page or (with CORS) from a site in [signup] allowed_origins; and
/subscribe/confirm/<token> confirms. The rules are audience.signup's; this module is the HTTP:
bodies read within a size limit, origins and CORS, the limit per client address, answers as
pages or JSON, and the confirmation email, sent right after the answer so that every answer
takes as long whatever the address.

Behind a reverse proxy the client address comes from its X-Forwarded-For, which uvicorn trusts
from the addresses in --forwarded-allow-ips (by default 127.0.0.1, a proxy on this machine).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from pipeline.audience import signup, signup_limits
from pipeline.audience.consent import Client
from pipeline.audience.subscribers import Subscriber
from pipeline.audience.values import clean_text
from pipeline.clock import utcnow
from pipeline.delivery import welcome
from pipeline.delivery.confirmation import Confirmations
from pipeline.errors import InvalidToken
from pipeline.settings.campaign import load_campaign
from pipeline.settings.workspace import Workspace
from pipeline.web.app import HEADERS, Form, Site, from_our_page, origin_of, parse_form

MAX_BODY = 16 * 1024  # an address, a name and a few topics; anything larger is not a signup
MAX_BLOCKED = 10_000  # client addresses remembered as over their limit, so a flood skips the database
SENDERS = 4  # confirmation emails on their way at once
FORM_URL = "../../subscribe"  # the form, from a confirmation link's page
log = logging.getLogger("campaign.web")
T = TypeVar("T")


class _TooLarge(Exception):
    pass


def wants_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    accept = request.headers.get("accept", "")
    return kind == "application/json" or ("application/json" in accept and "text/html" not in accept)


def read_fields(content_type: str, body: bytes) -> Form | None:
    """A form body's fields, or a JSON object's (strings, or lists of strings for topics); None
    for JSON that is not such an object."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        return parse_form(content_type, body)
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    fields: Form = {}
    for name, value in data.items():
        if isinstance(value, str):
            fields[name] = [value]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            fields[name] = value
        elif value is not None:
            return None
    return fields


class SignupSite:
    """The signup routes of one app, beside the pages of `site`."""

    def __init__(self, site: Site, transport: str | None) -> None:
        self.site = site
        self.workspace = site.workspace
        self.settings = site.workspace.signup
        self.pages = site.pages
        self.keys = signup_limits.Keys(site.tokens.secret)
        self.links = signup.ConfirmLinks(site.tokens)
        self.allowed = {origin_of(origin) for origin in self.settings.allowed_origins}
        self.blocked: dict[str, float] = {}  # client address -> time.monotonic() its refusals last until
        self.sending = threading.BoundedSemaphore(SENDERS)
        self.mailer: Confirmations | None = None
        if self.settings.enabled:
            if self.settings.welcome:
                load_campaign(self.workspace, self.settings.welcome)  # a missing folder fails now, not later
            if self.settings.double_opt_in:
                self.mailer = Confirmations(self.workspace, transport)  # so do missing confirm templates

    def routes(self, prefix: str) -> list[Route]:
        if not self.settings.enabled:
            return []
        return [Route(f"{prefix}/subscribe", self.subscribe, methods=["GET", "POST", "OPTIONS"]),
                Route(f"{prefix}/subscribe/confirm/{{token}}", self.confirm, methods=["GET", "POST"])]

    async def _write(self, change: Callable[[Connection], T]) -> T:
        def run() -> T:
            with self.site.store.transaction() as conn:
                return change(conn)

        return await run_in_threadpool(run)

    async def _body(self, request: Request) -> bytes:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY:
            raise _TooLarge
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:
                    raise _TooLarge
        except ClientDisconnect:
            raise _TooLarge from None  # gone: nobody reads the answer
        return bytes(body)

    def _cors(self, request: Request) -> dict[str, str]:
        origin = request.headers.get("origin")
        if origin is not None and origin_of(origin) in self.allowed:
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {"Vary": "Origin"}

    def _answer(self, request: Request, status: int, page: Callable[[], str], message: str,
                extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Response:
        sent = {**HEADERS, **self._cors(request), **(headers or {})}
        if wants_json(request):
            return JSONResponse({"ok": status < 300, "message": message, **(extra or {})}, status, headers=sent)
        return HTMLResponse(page(), status, headers=sent)

    def _from_allowed_page(self, request: Request) -> bool:
        """Our own page (see web.app.from_our_page: a request with neither Origin nor Referer
        included), or a page of a site in allowed_origins."""
        claimed = request.headers.get("origin") or request.headers.get("referer")
        return from_our_page(request, self.site.origin) or (claimed is not None and origin_of(claimed) in self.allowed)

    async def _client_allowed(self, ip: str) -> int:
        """0 if the client may sign up now, else the seconds until it may again."""
        until = self.blocked.get(ip)
        if until is not None and until > time.monotonic():
            return int(until - time.monotonic()) + 1
        now = utcnow()
        if await self._write(lambda conn: signup.client_allowed(conn, self.settings, self.keys, ip, now)):
            return 0
        wait = signup_limits.retry_after(now, signup_limits.HOUR)
        if len(self.blocked) >= MAX_BLOCKED:
            self.blocked = {k: v for k, v in self.blocked.items() if v > time.monotonic()}
        self.blocked[ip] = time.monotonic() + wait
        return wait

    async def subscribe(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return self._preflight(request)
        if request.method == "POST":
            return await self._submit(request)
        return HTMLResponse(self.pages.signup_form(), headers=HEADERS)

    def _preflight(self, request: Request) -> Response:
        """CORS: only the sites in allowed_origins may post from their pages' scripts."""
        origin = request.headers.get("origin")
        method = request.headers.get("access-control-request-method", "").upper()
        if origin is None or origin_of(origin) not in self.allowed or method != "POST":
            return Response(status_code=403, headers={"Vary": "Origin"})
        return Response(status_code=204, headers={
            "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type, Accept", "Access-Control-Max-Age": "600", "Vary": "Origin"})

    def _received(self, request: Request, email: str) -> Response:
        """The one answer to every signup that was read, whatever happened: nobody learns from it
        whether an address is on the list."""
        message = ("If this address is not on our list yet, an email with a link to confirm is on its way."
                   if self.settings.double_opt_in else "If this address was not on our list yet, it is now.")
        return self._answer(request, 200, lambda: self.pages.signup_received(email), message)

    async def _submit(self, request: Request) -> Response:
        if not self._from_allowed_page(request):
            return self._answer(request, 403, self.pages.signup_refused, "This form did not come from our page.")
        try:
            body = await self._body(request)
        except _TooLarge:
            return self._answer(request, 413, lambda: self.pages.error(413), "That is more than a signup.")
        fields = read_fields(request.headers.get("content-type", ""), body)
        if fields is None:
            return self._answer(request, 400, self.pages.signup_form, "Send a form, or a JSON object of strings.")
        ip = request.client.host if request.client else "unknown"
        wait = await self._client_allowed(ip)
        if wait:
            return self._answer(request, 429, lambda: self.pages.error(429), "Too many requests from here; try later.",
                                headers={"Retry-After": str(wait)})
        if signup.is_robot(fields):
            return self._received(request, (clean_text(signup.first(fields, "email")) or "")[:254])
        form, errors = signup.read_form(fields, self.workspace.topics)
        if form is None:
            values = {"email": signup.first(fields, "email").strip()[:254],
                      "first_name": (clean_text(signup.first(fields, "first_name")) or "")[:200]}
            return self._answer(request, 400, lambda: self.pages.signup_form(values, fields.get("topic", ()), errors),
                                "Please check the form.", {"errors": errors})
        client = Client(ip, request.headers.get("user-agent"))
        page_url = request.headers.get("referer") or request.headers.get("origin")
        content = None
        if self.settings.welcome and not self.settings.double_opt_in:
            content = await run_in_threadpool(welcome.current_content, self.workspace)
        now = utcnow()

        def change(conn: Connection) -> signup.Signed:
            signed = signup.request(conn, self.settings, self.keys, form, client, page_url, now)
            if signed.subscribed and self.settings.welcome and signed.subscriber_id is not None:
                welcome.queue(conn, self.settings.welcome, content, signed.subscriber_id, now)
            return signed

        signed = await self._write(change)
        response = self._received(request, form.email)
        if signed.mail:
            response.background = BackgroundTask(self._send_confirmation, signed, now)
        return response

    def _send_confirmation(self, signed: signup.Signed, now: datetime) -> None:
        """After the answer, in a worker thread: a failure is logged (without the address); the
        reader may sign up again."""
        assert self.mailer is not None and signed.subscriber_id is not None and signed.consent_id is not None
        token = self.links.make(signed.subscriber_id, signed.consent_id, signed.email, now)
        with self.sending:
            try:
                self.mailer.send(signed.email, signed.first_name,
                                 f"{self.workspace.unsubscribe_url}/subscribe/confirm/{token}")
            except Exception as exc:  # noqa: BLE001 - the transport's refusals, a dropped connection, a template
                log.error("the confirmation email to subscriber %s was not sent: %s", signed.subscriber_id,
                          getattr(exc, "reply", None) or exc)

    async def confirm(self, request: Request) -> Response:
        try:
            link = self.links.read(request.path_params["token"])
        except InvalidToken:
            return HTMLResponse(self.pages.signup_invalid(FORM_URL), 400, headers=HEADERS)
        if link.expired(utcnow(), self.settings.confirm_days):
            return HTMLResponse(self.pages.signup_expired(FORM_URL), 410, headers=HEADERS)
        if request.method == "POST":
            return await self._confirm(request, link)

        def look_up() -> Subscriber | None:
            with self.site.store.reading() as conn:
                return self.links.reader(conn, link)

        subscriber = await run_in_threadpool(look_up)
        if subscriber is None or subscriber.status not in ("pending", "subscribed"):
            return HTMLResponse(self.pages.signup_invalid(FORM_URL), 400, headers=HEADERS)
        if subscriber.status == "subscribed":
            return HTMLResponse(self.pages.signup_done(subscriber.email), headers=HEADERS)
        return HTMLResponse(self.pages.signup_confirm(subscriber.email), headers=HEADERS)

    async def _confirm(self, request: Request, link: signup.ConfirmLink) -> Response:
        try:
            await self._body(request)
        except _TooLarge:
            return HTMLResponse(self.pages.error(413), 413, headers=HEADERS)
        if not from_our_page(request, self.site.origin):
            return HTMLResponse(self.pages.refused(), 403, headers=HEADERS)
        content = await run_in_threadpool(welcome.current_content, self.workspace) if self.settings.welcome else None
        client = Client(request.client.host if request.client else None, request.headers.get("user-agent"))
        now = utcnow()

        def change(conn: Connection) -> signup.Confirmation:
            done = signup.confirm(conn, self.links, link, client, now)
            if done.confirmed and done.subscriber is not None and self.settings.welcome:
                welcome.queue(conn, self.settings.welcome, content, done.subscriber.id, now)
            return done

        done = await self._write(change)
        if done.subscriber is None or done.subscriber.status != "subscribed":
            return HTMLResponse(self.pages.signup_invalid(FORM_URL), 400, headers=HEADERS)
        return HTMLResponse(self.pages.signup_done(done.subscriber.email), headers=HEADERS)


def snippet(workspace: Workspace) -> tuple[str, list[str]]:
    """The signup form as HTML for another site's page (`campaign signup-snippet`), posting to
    <base_url>/subscribe, and what stands in its way, if anything."""
    from pipeline.errors import ConfigError
    from pipeline.web.pages import Pages

    signup_settings = workspace.signup
    if not signup_settings.enabled:
        raise ConfigError("has no [signup] section, so `campaign serve` has no form to post to: add one "
                          "(see docs/signup.md)", where=workspace.config_path)
    notes = []
    site = origin_of(workspace.brand.website)
    if site is not None and site != origin_of(workspace.unsubscribe_url) and \
            site not in {origin_of(o) for o in signup_settings.allowed_origins}:
        scheme, host, port = site
        notes.append(f"campaign serve refuses forms from {scheme}://{host}:{port} ([brand] website) until it is in "
                     "[signup] allowed_origins")
    return Pages(workspace).snippet(f"{workspace.unsubscribe_url}/subscribe"), notes
