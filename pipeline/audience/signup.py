"""Signing up through the form of `campaign serve`: double opt-in, consent records and limits.

A signup never tells whether an address is on the list: every valid request gets the same
answer, whatever happens behind it.

- A new address becomes a `pending` subscriber with a consent record, and is sent a link to
  confirm (the web side sends it, see delivery.confirmation).
- A pending one is brought up to date (first name, topics) and sent a fresh link, at most
  [signup] per_address_per_day times a day.
- A subscribed, unsubscribed, bounced, complained or erased address is left exactly as it is,
  and is sent nothing.

The link works for [signup] confirm_days. Opening it only shows a button (link scanners open
every link in a message); the button's POST makes the subscriber `subscribed` and completes the
consent record with the time, IP address and browser of the confirmation. With
`double_opt_in = false` a signup subscribes a new or pending address at once.

Pending subscribers are never recipients: segments select subscribed addresses only, and
senders check the status again when each message's turn comes.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, Signer
from sqlalchemy.engine import Connection

from pipeline.audience import consent, signup_limits
from pipeline.audience.addresses import InvalidEmail, normalize_email
from pipeline.audience.consent import Client
from pipeline.audience.subscribers import (
    Subscriber,
    by_id,
    confirm_pending,
    request_pending,
)
from pipeline.audience.tokens import Tokens
from pipeline.audience.values import clean_text
from pipeline.errors import InvalidToken
from pipeline.settings.signup import Signup

SOURCE = "web:signup"
CONFIRM_SOURCE = "web:signup-confirm"
MAX_NAME = 100
HONEYPOT = "website"  # a field people never see (see the form): only robots fill it in
_VERSION = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_SALT = "signup-confirm"


@dataclass(frozen=True)
class SignupForm:
    """A signup request that passed validation."""

    email: str  # normalised
    first_name: str | None
    topics: tuple[str, ...]
    consent_version: str | None  # the version the page says it showed, if it says


def first(fields: Mapping[str, Sequence[str]], name: str) -> str:
    values = fields.get(name) or [""]
    return values[0]


def is_robot(fields: Mapping[str, Sequence[str]]) -> bool:
    return any(value.strip() for value in fields.get(HONEYPOT, ()))


def read_form(fields: Mapping[str, Sequence[str]],
              topics: Mapping[str, str]) -> tuple[SignupForm | None, dict[str, str]]:
    """The request, or None and what is wrong, field by field, in words for the reader."""
    errors: dict[str, str] = {}
    raw = first(fields, "email").strip()
    email = ""
    if not raw:
        errors["email"] = "Please enter your email address."
    else:
        try:
            email = normalize_email(raw)
        except InvalidEmail:
            errors["email"] = "This does not look like an email address. Please check it."
    name = clean_text(first(fields, "first_name"))  # CR, LF and other controls become spaces
    if name is not None and len(name) > MAX_NAME:
        errors["first_name"] = f"Please keep your first name under {MAX_NAME} characters."
    chosen = tuple(tag for tag in topics if tag in set(fields.get("topic", ())))
    version = first(fields, "consent_version").strip()
    if errors:
        return None, errors
    return SignupForm(email, name, chosen, version if _VERSION.match(version) else None), {}


@dataclass(frozen=True)
class Signed:
    """What a signup did, for the web side: whether to send a confirmation, and to whom."""

    subscriber_id: int | None = None
    consent_id: int | None = None
    email: str = ""
    first_name: str | None = None
    mail: bool = False  # send a confirmation email now
    subscribed: bool = False  # single opt-in: subscribed now (queue the welcome)


def request(conn: Connection, settings: Signup, keys: signup_limits.Keys, form: SignupForm, client: Client,
            page_url: str | None, now: datetime) -> Signed:
    """Record a signup (see the module's description); one transaction."""
    subscriber, _ = request_pending(conn, form.email, form.first_name, form.topics, SOURCE, now)
    if subscriber is None:
        return Signed()
    if settings.double_opt_in and signup_limits.hit(conn, signup_limits.ADDRESS,
                                                    keys(signup_limits.ADDRESS, subscriber.email), signup_limits.DAY,
                                                    now) > settings.per_address_per_day:
        return Signed(subscriber.id, email=subscriber.email)  # enough links today: no mail, no new record
    posted = form.consent_version
    text = settings.consent_text if posted in (None, settings.version) else None  # an older page's wording is unknown
    method = consent.DOUBLE_OPT_IN if settings.double_opt_in else consent.SINGLE_OPT_IN
    consent_id = consent.requested(conn, subscriber.id, method, text, posted or settings.version, page_url, client,
                                   SOURCE, now)
    if not settings.double_opt_in:
        done = confirm_pending(conn, subscriber.id, SOURCE, json.dumps({"consent": consent_id}), now)
        return Signed(subscriber.id, consent_id, subscriber.email, subscriber.first_name, subscribed=done)
    return Signed(subscriber.id, consent_id, subscriber.email, subscriber.first_name, mail=True)


def client_allowed(conn: Connection, settings: Signup, keys: signup_limits.Keys, ip: str, now: datetime) -> bool:
    """Count a request from this client address; False once it is over [signup] per_ip_per_hour."""
    count = signup_limits.hit(conn, signup_limits.IP, keys(signup_limits.IP, ip), signup_limits.HOUR, now)
    return count <= settings.per_ip_per_hour


@dataclass(frozen=True)
class ConfirmLink:
    subscriber_id: int
    consent_id: int
    issued: datetime
    binding: str

    def expired(self, now: datetime, days: int) -> bool:
        return now - self.issued > timedelta(days=days) or self.issued > now + timedelta(minutes=5)


class ConfirmLinks:
    """"<subscriber id>.<consent id>.<issued, Unix time>.<address binding>.<signature>": signed
    with the workspace's secret, bound to the address like every reader's link (audience.tokens),
    and dated, so it stops working after [signup] confirm_days."""

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens
        self._signer = Signer(tokens.secret, salt=_SALT)

    def make(self, subscriber_id: int, consent_id: int, email: str, now: datetime) -> str:
        payload = f"{subscriber_id}.{consent_id}.{int(now.timestamp())}.{self.tokens.binding(email)}"
        return self._signer.sign(payload).decode("ascii")

    def read(self, token: str) -> ConfirmLink:
        """What a link names; InvalidToken for anything this workspace did not sign."""
        try:
            subscriber, consent_id, issued, binding = self._signer.unsign(token).decode("ascii").split(".", 3)
            return ConfirmLink(int(subscriber), int(consent_id), datetime.fromtimestamp(int(issued), UTC), binding)
        except (BadSignature, UnicodeDecodeError, ValueError, OverflowError, OSError):
            raise InvalidToken("this link is not valid") from None

    def reader(self, conn: Connection, link: ConfirmLink, *, lock: bool = False) -> Subscriber | None:
        """The subscriber the link was made for; None once they are gone (purged, erased)."""
        subscriber = by_id(conn, link.subscriber_id, lock=lock)
        if subscriber is None or not hmac.compare_digest(self.tokens.binding(subscriber.email), link.binding):
            return None
        return subscriber


@dataclass(frozen=True)
class Confirmation:
    subscriber: Subscriber | None  # None: nobody answers to the link any more
    confirmed: bool  # made subscribed now (queue the welcome); False if they already were


def confirm(conn: Connection, links: ConfirmLinks, link: ConfirmLink, client: Client, now: datetime) -> Confirmation:
    """The confirmation page's button. Confirming twice changes nothing the second time; a
    subscriber who left (unsubscribed, bounced, complained) stays as they are."""
    subscriber = links.reader(conn, link, lock=True)
    if subscriber is None or subscriber.status != "pending":
        return Confirmation(subscriber, False)
    if not confirm_pending(conn, subscriber.id, CONFIRM_SOURCE, json.dumps({"consent": link.consent_id}), now):
        return Confirmation(links.reader(conn, link), False)
    consent.confirmed(conn, link.consent_id, subscriber.id, client, now)
    return Confirmation(by_id(conn, subscriber.id), True)
