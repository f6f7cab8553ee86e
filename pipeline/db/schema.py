"""The tables: one SQLAlchemy Core schema for SQLite (the default) and PostgreSQL.

Each table belongs to the repository module named above it; other modules call that module's
functions instead of writing to the table themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

# "pending": signed up through the form, not yet confirmed (audience.signup); never a recipient.
STATUSES = ("subscribed", "unsubscribed", "bounced", "complained", "pending")
SUPPRESSED = ("unsubscribed", "bounced", "complained")


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; stored as naive UTC on every database."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


metadata = sa.MetaData()

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))

subscribers = sa.Table(
    "subscribers", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False),
    # The lower-cased address: uniqueness and look-ups ignore case.
    sa.Column("email_key", sa.String(320), nullable=False, unique=True),
    sa.Column("first_name", sa.String(200)),
    sa.Column("last_name", sa.String(200)),
    sa.Column("fields", sa.JSON().with_variant(JSONB(), "postgresql"),
              nullable=False, default=dict),
    sa.Column("timezone", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("consent_source", sa.String(200)),
    sa.Column("consent_at", UTCDateTime),
    sa.Column("signed_up", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.CheckConstraint(f"status IN ({', '.join(repr(s) for s in STATUSES)})", name="subscribers_status"),
    # An id is never given twice, not even after the highest one is erased: links and Message-IDs
    # in mail already sent name subscribers by id (PostgreSQL's sequences never reuse one anyway).
    sqlite_autoincrement=True,
)
# Date-range segments read this index alone. Status is second on purpose: led by status, SQLite
# would scan it for every segment instead of looking rows up from a tag's short list.
signed_up_index = sa.Index("subscribers_signed_up_status", subscribers.c.signed_up, subscribers.c.status)

subscriber_tags = sa.Table(
    "subscriber_tags", metadata,
    sa.Column("tag", sa.String(100), primary_key=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
              primary_key=True),
    sqlite_with_rowid=False,  # the primary key is the table: one b-tree to write, not two
)
tagged_index = sa.Index("subscriber_tags_subscriber", subscriber_tags.c.subscriber_id)

# Custom field names seen so far, so segment errors can list them without scanning every row.
custom_fields = sa.Table(
    "custom_fields", metadata,
    sa.Column("name", sa.String(100), primary_key=True),
)

# Erased addresses: only a hash remains, so they are never mailed again.
suppressions = sa.Table(
    "suppressions", metadata,
    sa.Column("email_hash", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Every change of a subscriber's status, with when and where it came from.
subscriber_events = sa.Table(
    "subscriber_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="SET NULL")),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
sa.Index("subscriber_events_subscriber", subscriber_events.c.subscriber_id)

# audience.consent: the record of each consent to be mailed, as a GDPR access request or an audit
# asks for it. A signup makes a row (what the form said, when, from where); its confirmation fills
# in the confirmed_ columns. Imports keep the consent another system recorded. Erasing a
# subscriber deletes their rows.
consents = sa.Table(
    "consents", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("method", sa.String(32), nullable=False),  # double-opt-in, single-opt-in, import
    sa.Column("text", sa.Text),  # the consent sentence the reader was shown, when known
    sa.Column("version", sa.String(64)),
    sa.Column("form_url", sa.Text),  # the page the form was on, as the browser named it
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("requested_at", UTCDateTime),
    sa.Column("requested_ip", sa.String(45)),
    sa.Column("requested_user_agent", sa.Text),
    sa.Column("confirmed_at", UTCDateTime),
    sa.Column("confirmed_ip", sa.String(45)),
    sa.Column("confirmed_user_agent", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
sa.Index("consents_subscriber", consents.c.subscriber_id)

# audience.consent too: the consent an import file names for each of its rows (Mailchimp's
# OPTIN_TIME, OPTIN_IP, CONFIRM_TIME and CONFIRM_IP). What the whole import shares (the file, the
# time it was imported) is one consent_imports row, so that a million imported rows carry only
# their own times and addresses, in one b-tree led by the subscriber (signup consents keep theirs).
consent_imports = sa.Table(
    "consent_imports", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source", sa.String(200), nullable=False),  # "import:FILE"
    sa.Column("created_at", UTCDateTime, nullable=False),
)
imported_consents = sa.Table(
    "imported_consents", metadata,
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("import_id", sa.Integer, sa.ForeignKey("consent_imports.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("requested_at", UTCDateTime),
    sa.Column("requested_ip", sa.String(45)),
    sa.Column("confirmed_at", UTCDateTime),
    sa.Column("confirmed_ip", sa.String(45)),
    sqlite_with_rowid=False,
)

# audience.signup_limits: how many signups one client address, or confirmations one e-mail address,
# had in the current window; in the database so that every `campaign serve` process counts together.
# Keys are keyed hashes: neither addresses nor IPs are kept here.
signup_limits = sa.Table(
    "signup_limits", metadata,
    sa.Column("scope", sa.String(16), primary_key=True),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("window_start", UTCDateTime, primary_key=True),
    sa.Column("hits", sa.Integer, nullable=False),
)


SEND_STATES = ("draft", "scheduled", "sending", "paused", "sent", "cancelled")
DELIVERY_STATES = ("queued", "sending", "sent", "failed", "skipped", "unknown")

# One row per send of a campaign: a one-off campaign has one, a recurring one one per occurrence.
sends = sa.Table(
    "sends", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("campaign", sa.String(100), nullable=False),
    sa.Column("occurrence", sa.String(40), nullable=False, default=""),  # "" for one-off campaigns
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("segment", sa.Text),
    sa.Column("subject", sa.Text),
    sa.Column("scheduled_at", UTCDateTime),  # the instant, or with local_time the wall time's date anchor
    sa.Column("local_time", sa.String(5)),  # "09:00" when each recipient gets it at that time in their zone
    sa.Column("timezone", sa.String(64)),
    sa.Column("snapshot_at", UTCDateTime),  # when the recipients were fixed
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("campaign", "occurrence", name="sends_campaign_occurrence"),
    sa.CheckConstraint(f"state IN ({', '.join(repr(s) for s in SEND_STATES)})", name="sends_state"),
)

# One row per (send, subscriber), made when the send starts; the unit of "exactly once".
deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="SET NULL")),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("lease_until", UTCDateTime),  # a claim: until then, the worker named below owns the row
    sa.Column("worker", sa.String(64)),
    sa.Column("message_id", sa.String(255)),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("error", sa.Text),  # the server's reply for failed and retried deliveries
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("send_id", "subscriber_id", name="deliveries_send_subscriber"),
    sa.CheckConstraint(f"state IN ({', '.join(repr(s) for s in DELIVERY_STATES)})", name="deliveries_state"),
)
# Claims look for a send's queued rows, oldest due first. Only queued rows are in this index,
# so marking a row sending or sent removes one entry instead of rewriting it (a third less
# work per message), and claims never step over rows already sent.
_QUEUED = sa.text("state = 'queued'")
queued_index = sa.Index("deliveries_due", deliveries.c.send_id, deliveries.c.due_at, deliveries.c.id,
                        sqlite_where=_QUEUED, postgresql_where=_QUEUED)
sa.Index("deliveries_subscriber", deliveries.c.subscriber_id)
# Rows a sender holds (leased, or on the wire): a few at any time, and the ones a crash leaves
# behind. Recovery and the idle check look only at these, never at every delivery of a send.
_LEASED = sa.text("lease_until IS NOT NULL")
leased_index = sa.Index("deliveries_leased", deliveries.c.send_id, deliveries.c.lease_until,
                        sqlite_where=_LEASED, postgresql_where=_LEASED)


BOUNCE_KINDS = ("hard", "soft", "complaint")

# One row per bounced or complaining recipient of an imported report (DSN, ARF or a provider's
# CSV row). report_key is unique, so importing the same report again finds it and changes nothing.
bounces = sa.Table(
    "bounces", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("report_key", sa.String(64), nullable=False, unique=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="SET NULL")),
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id", ondelete="SET NULL")),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16)),  # the enhanced status code, "5.1.1"
    sa.Column("diagnostic", sa.Text),  # the remote server's words, addresses blanked out
    sa.Column("source", sa.String(500), nullable=False),  # the file (and CSV line) it came from
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.CheckConstraint(f"kind IN ({', '.join(repr(k) for k in BOUNCE_KINDS)})", name="bounces_kind"),
)
sa.Index("bounces_subscriber", bounces.c.subscriber_id)
sa.Index("bounces_send", bounces.c.send_id)


# A recurring campaign that was started with `campaign schedule`: when, and its last occurrence.
recurrences = sa.Table(
    "recurrences", metadata,
    sa.Column("campaign", sa.String(100), primary_key=True),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("last_occurrence", UTCDateTime),  # the instant of the latest occurrence dealt with
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # The next occurrence, and the settings.toml (mtime and size) it was worked out from, so a tick
    # can tell "nothing due" without parsing the recurrence (timing.idle).
    sa.Column("next_at", UTCDateTime),
    sa.Column("settings_stamp", sa.String(64)),
)

# Every article a recurring digest has sent, so none goes out twice.
digest_articles = sa.Table(
    "digest_articles", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("campaign", sa.String(100), nullable=False),
    sa.Column("article_key", sa.String(500), nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id", ondelete="SET NULL")),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("campaign", "article_key", name="digest_articles_campaign_key"),
)

# What a send says, fixed in the transaction that fixes its recipients (delivery.frozen): the
# folder or the feed may change before every recipient's copy has gone out.
send_content = sa.Table(
    "send_content", metadata,
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("preheader", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)


# What happened to a send and when: started, paused, resumed, reopened for a retry, finished.
send_events = sa.Table(
    "send_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
sa.Index("send_events_send", send_events.c.send_id)


# engagement.events: opens and clicks of tracked messages ([tracking] in campaign.toml). One row
# per event; `key` makes recording idempotent (the same hit twice in a second is one event).
# `machine` marks what a privacy proxy or a link scanner did rather than a reader; the rows are
# kept, and counted apart. Erasing a subscriber deletes their rows.
ENGAGEMENT_KINDS = ("open", "click")
tracking_events = sa.Table(
    "tracking_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.BigInteger, nullable=False, unique=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("link", sa.Integer, nullable=False),  # the link's number in the send's message; 0 for an open
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("since_sent", sa.Integer),  # seconds from the message leaving to the event
    sa.Column("agent", sa.String(16), nullable=False),  # browser, apple-proxy, google-proxy, scanner, head...
    sa.Column("machine", sa.Boolean, nullable=False),
    sa.CheckConstraint(f"kind IN ({', '.join(repr(k) for k in ENGAGEMENT_KINDS)})", name="tracking_events_kind"),
)
# Reports and segments read only these indexes: per send and kind, who, which link, and when.
sa.Index("tracking_events_readers", tracking_events.c.send_id, tracking_events.c.kind, tracking_events.c.machine,
         tracking_events.c.subscriber_id)
sa.Index("tracking_events_links", tracking_events.c.send_id, tracking_events.c.kind, tracking_events.c.machine,
         tracking_events.c.link, tracking_events.c.subscriber_id)
sa.Index("tracking_events_times", tracking_events.c.send_id, tracking_events.c.kind, tracking_events.c.machine,
         tracking_events.c.since_sent)
sa.Index("tracking_events_subscriber", tracking_events.c.subscriber_id, tracking_events.c.at)

# The links of each tracked send that were clicked, by number, as the redirect sent readers on
# (`url`, UTM parameters and all) and without UTM parameters (`bare`), for clicked("slug", "https://...").
tracking_links = sa.Table(
    "tracking_links", metadata,
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("bare", sa.Text, nullable=False),
)
