"""Reading bounce and complaint reports into events, before anything touches the database.

Three kinds of input: delivery status notifications (RFC 3464: multipart/report with a
message/delivery-status part, one block per recipient), complaint feedback reports (RFC 5965,
ARF: a message/feedback-report part) and mail providers' CSV exports of bounces and
complaints. Each event carries a key that is the same every time the same report is read, so a
second import of it is recognised.
"""

from __future__ import annotations

import csv
import email
import email.utils
import hashlib
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

from pipeline.clock import as_utc, parse_utc
from pipeline.errors import BounceError

HARD, SOFT, COMPLAINT = "hard", "soft", "complaint"
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
MAX_DIAGNOSTIC = 1000


@dataclass(frozen=True)
class Event:
    kind: str  # hard, soft or complaint
    key: str  # the same for the same report and recipient every time it is read
    recipient: str | None  # the address the report names
    message_id: str | None  # the Message-ID of the message that bounced, when the report quotes it
    status: str | None  # the enhanced status code, "5.1.1"
    diagnostic: str | None
    received_at: datetime | None


@dataclass(frozen=True)
class Report:
    source: str  # the file, relative to what was imported, and the line for CSV rows
    format: str | None  # "dsn", "arf" or "csv"; None for mail that is not a report
    events: tuple[Event, ...] = ()


def _key(identity: str, index: int) -> str:
    return hashlib.sha256(f"{identity}\n{index}".encode()).hexdigest()


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def status_code(text: str | None) -> str | None:
    """The first enhanced status code in text: "5.1.1" from "5.1.1 (user unknown)"."""
    match = _STATUS.search(text or "")
    return ".".join(match.groups()) if match else None


def classify(action: str | None, status: str | None) -> str | None:
    """hard, soft, or None for a recipient a DSN says was delivered.

    The status code decides when there is one: class 5 is permanent, class 4 transient even when
    the server gave up trying ("Action: failed", "Status: 4.4.7" after days of a full mailbox),
    since a later send may well arrive. Without a code, the action decides.
    """
    action = (action or "").strip().lower()
    if action in ("delivered", "relayed", "expanded"):
        return None
    if status:
        return {"5": HARD, "4": SOFT}.get(status[0])
    return {"failed": HARD, "delayed": SOFT}.get(action)


def _address(field: str | None) -> str | None:
    """The address in a DSN field such as "rfc822; ana@example.com" or an ARF "<ana@example.com>"."""
    if not field:
        return None
    value = _one_line(field).rpartition(";")[2].strip().strip("<>").strip()
    return value if "@" in value else None


def _when(*values: str | None) -> datetime | None:
    for value in values:
        if not value:
            continue
        try:
            parsed = email.utils.parsedate_to_datetime(_one_line(value))
        except (TypeError, ValueError, IndexError):
            continue
        return as_utc(parsed)
    return None


def _fields(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part, which the
    parser reads as a list of header-only messages."""
    payload = part.get_payload()
    return [block for block in payload if isinstance(block, Message)] if isinstance(payload, list) else []


def _original(message: Message) -> Message | None:
    """The headers of the message the report is about, from its text/rfc822-headers or message/rfc822 part."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            return email.message_from_bytes(raw if isinstance(raw, bytes) else b"")
        if kind == "message/rfc822":
            inner = part.get_payload()
            return inner[0] if isinstance(inner, list) and inner and isinstance(inner[0], Message) else None
    return None


def _find(message: Message, content_type: str) -> Message | None:
    return next((part for part in message.walk() if part.get_content_type() == content_type), None)


def _identity(message: Message, data: bytes) -> str:
    """What makes a report itself: its Message-ID, or else its body, which a second delivery of
    the same report (with other Received or Delivered-To headers) leaves as it was."""
    own = _one_line(message.get("Message-ID", ""))
    if own:
        return f"message-id {own}"
    split = _BLANK_LINE.search(data)
    return "body " + hashlib.sha256(data[split.end():] if split else data).hexdigest()


def read_message(data: bytes, source: str) -> Report:
    """A DSN or ARF report read from one message; any other mail is a Report without a format."""
    message = email.message_from_bytes(data)
    delivery = _find(message, "message/delivery-status")
    feedback = _find(message, "message/feedback-report")
    if delivery is None and feedback is None:
        return Report(source, None)
    identity = _identity(message, data)
    original = _original(message)
    original_id = (_one_line(original.get("Message-ID", "")) or None) if original is not None else None
    if feedback is not None:
        return Report(source, "arf", _complaint(feedback, original, original_id, message, identity))
    assert delivery is not None
    blocks = _fields(delivery)
    per_message = blocks[0] if blocks and "Action" not in blocks[0] else Message()
    events = []
    for index, block in enumerate(b for b in blocks if "Action" in b):
        status = status_code(block.get("Status"))
        kind = classify(block.get("Action"), status)
        if kind is None:
            continue
        diagnostic = _one_line(block.get("Diagnostic-Code", "")).partition(";")[2].strip() or None
        events.append(Event(
            kind=kind, key=_key(identity, index),
            recipient=_address(block.get("Final-Recipient")) or _address(block.get("Original-Recipient")),
            message_id=original_id, status=status, diagnostic=diagnostic,
            received_at=_when(message.get("Date"), per_message.get("Arrival-Date")),
        ))
    return Report(source, "dsn", tuple(events))


def _complaint(feedback: Message, original: Message | None, original_id: str | None, message: Message,
               identity: str) -> tuple[Event, ...]:
    fields = next(iter(_fields(feedback)), Message())
    feedback_type = _one_line(fields.get("Feedback-Type", "abuse")).lower()
    if feedback_type == "not-spam":
        return ()  # a reader saying our mail is wanted
    recipient = _address(fields.get("Original-Rcpt-To"))
    if recipient is None and original is not None:
        recipient = next((a for _, a in email.utils.getaddresses([original.get("To", "")]) if "@" in a), None)
    return (Event(kind=COMPLAINT, key=_key(identity, 0), recipient=recipient, message_id=original_id, status=None,
                  diagnostic=f"Feedback-Type: {feedback_type}",
                  received_at=_when(fields.get("Arrival-Date"), message.get("Date"))),)


# --- providers' CSV exports ------------------------------------------------------------------

# Column headers that mean something, from the exports of common providers, as lower-case letters
# and digits only ("Bounce Type", "bounceType" and "bounce_type" alike). Earlier names win.
_COLUMNS = {
    "recipient": ("email", "emailaddress", "recipient", "recipientemail", "address", "to", "mail"),
    "event": ("type", "event", "eventtype", "recordtype", "notificationtype", "category"),
    "class": ("bouncetype", "bounceclass", "bouncecategory", "severity", "class", "bouncekind"),
    "time": ("timestamp", "date", "time", "created", "createdat", "bouncedat", "receivedat", "eventtime",
             "occurredat", "reportedat"),
    "message_id": ("messageid", "smtpid", "originalmessageid", "message"),
    "status": ("status", "statuscode", "smtpstatus", "enhancedstatus", "deliverystatuscode", "code"),
    # The remote server's own words before a provider's explanation of them.
    "diagnostic": ("diagnostic", "diagnosticcode", "smtpresponse", "details", "response", "bouncereason", "reason",
                   "error", "description"),
}
# Values, too, as lower-case letters and digits: "HardBounce", "hard_bounce" and "Hard bounce" alike.
_COMPLAINT_WORDS = {"complaint", "complained", "spam", "spamreport", "spamcomplaint", "abuse", "abusereport", "fbl"}
_HARD_WORDS = {"hard", "hardbounce", "hardbounced", "permanent", "permanentbounce", "permanentfailure"}
_SOFT_WORDS = {"soft", "softbounce", "softbounced", "transient", "transientbounce", "temporary",
               "temporaryfailure", "deferred", "delayed", "undetermined"}
_BOUNCE_WORDS = {"bounce", "bounced", "bounces", "failed", "failure"} | _HARD_WORDS | _SOFT_WORDS


def _word(value: str | None) -> str:
    return re.sub(r"[^a-z0-9]", "", (value or "").lower())


def _csv_time(value: str | None) -> datetime | None:
    text = (value or "").strip()
    if not text:
        return None
    if re.fullmatch(r"\d{9,13}(\.\d+)?", text):  # Unix time in seconds, or milliseconds
        seconds = float(text)
        return datetime.fromtimestamp(seconds / 1000 if seconds > 1e11 else seconds, UTC)
    try:
        return parse_utc(text)
    except ValueError:
        return _when(text)


def _row_kind(values: dict[str, str]) -> str | None:
    event = _word(values.get("event"))
    status_text = values.get("status", "")
    if not event and status_text and not status_code(status_text):
        event = _word(status_text)  # exports whose "status" column says bounced or complained
    if event in _COMPLAINT_WORDS:
        return COMPLAINT
    if event and event not in _BOUNCE_WORDS:
        return None  # delivered, opened, clicked...: not a bounce
    severity = _word(values.get("class"))
    if severity in _HARD_WORDS or (not severity and event in _HARD_WORDS):
        return HARD
    if severity in _SOFT_WORDS or (not severity and event in _SOFT_WORDS):
        return SOFT
    code = status_code(status_text) or status_code(values.get("diagnostic"))
    # A bounce list that does not say which kind lists the addresses the provider gave up on.
    return SOFT if code and code.startswith("4") else HARD


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise BounceError(f"line {line}: not UTF-8 text", where=path) from None


def _columns(header: Sequence[str], path: Path) -> dict[str, int]:
    names = [_word(cell) for cell in header]
    roles: dict[str, int] = {}
    for role, aliases in _COLUMNS.items():
        found = next((names.index(alias) for alias in aliases if alias in names), None)
        if found is not None:
            roles[role] = found
    if "recipient" not in roles:
        raise BounceError("no email or recipient column (found: " + ", ".join(header) + ")", where=path)
    return roles


def read_csv(path: Path, source: str) -> Iterator[Report]:
    """One Report per row: a bounce or complaint, or a row of some other event (no format)."""
    text = _decode(path.read_bytes(), path)
    if not text.strip():
        raise BounceError("is empty", where=path)
    first = text.splitlines()[0]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(first, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=dialect.delimiter)
    roles = _columns(next(reader), path)
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        where = f"{source}:{reader.line_num}"
        values = {role: cells[i].strip() for role, i in roles.items() if i < len(cells) and cells[i].strip()}
        kind = _row_kind(values)
        recipient = values.get("recipient")
        if kind is None or recipient is None:
            yield Report(where, None)
            continue
        status = status_code(values.get("status")) or status_code(values.get("diagnostic"))
        message_id = values.get("message_id")
        # Not the file or line: the same row in next month's longer export is the same report.
        identity = "\x1f".join(["csv", recipient.lower(), kind, status or "", values.get("time", ""),
                                message_id or ""])
        yield Report(where, "csv", (Event(
            kind=kind, key=_key(identity, 0), recipient=recipient, message_id=message_id, status=status,
            diagnostic=values.get("diagnostic"), received_at=_csv_time(values.get("time")),
        ),))


# --- files and folders ------------------------------------------------------------------------

def _files(path: Path) -> list[tuple[Path, str]]:
    """The files to read under path, each with the name reports give as their source."""
    if not path.exists():
        raise BounceError("no such file or folder", where=path)
    if not path.is_dir():
        return [(path, path.name)]
    if (path / "cur").is_dir() or (path / "new").is_dir():
        # A Maildir: tmp/ holds messages still being written.
        found = [f for sub in ("cur", "new") if (path / sub).is_dir() for f in (path / sub).iterdir()]
        found = [f for f in found if f.is_file() and not f.name.startswith(".")]
    else:
        found = [f for f in path.iterdir() if f.is_file() and f.suffix.lower() in (".eml", ".csv")]
    return [(f, f.relative_to(path).as_posix()) for f in sorted(found)]


def read_reports(path: Path) -> list[Report]:
    """Every report in a Maildir (cur/ and new/), a folder of .eml and .csv files, or one file."""
    reports: list[Report] = []
    for file, source in _files(path):
        try:
            if file.suffix.lower() == ".csv":
                reports.extend(read_csv(file, source))
            else:
                reports.append(read_message(file.read_bytes(), source))
        except OSError as exc:
            raise BounceError(f"cannot read: {exc.strerror or exc}", where=file) from None
    return reports
