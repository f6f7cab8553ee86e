"""Commands for the list: `campaign subscribers ...` and `campaign segments ...`."""

from __future__ import annotations

import io
import json
import re
import sys
from datetime import timedelta
from pathlib import Path

import click

from pipeline.audience.segments import Segment, count, resolve, sample
from pipeline.audience.subscribers import (
    Changes,
    Subscriber,
    add,
    count_by_status,
    erase,
    iterate,
    purge_pending,
    tag,
    unsubscribe,
    untag,
)
from pipeline.audience.values import (
    canonical_timezone,
    clean_tag,
    clean_text,
    field_value,
)
from pipeline.cli.context import NOW_OPTION, State, parse_now, pass_state
from pipeline.db.schema import STATUSES
from pipeline.errors import CampaignError, SubscriberError
from pipeline.files import write_atomic

SOURCE = "cli"
PROGRESS_FROM_BYTES = 1 << 20


def _segment(state: State, conn: object, name_or_expression: str | None) -> Segment | None:
    if name_or_expression is None:
        return None
    return resolve(conn, name_or_expression, state.workspace.segments)  # type: ignore[arg-type]


def _line(subscriber: Subscriber) -> str:
    return "\t".join([subscriber.email, subscriber.first_name or "", subscriber.last_name or "",
                      subscriber.status, ",".join(subscriber.tags)])


@click.group()
def subscribers() -> None:
    """Import, export, list and change subscribers."""


@subscribers.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--tag", "tags", multiple=True, help="Add this tag to every imported subscriber (repeatable).")
@click.option("--update/--no-update", default=True, show_default=True,
              help="Update names, fields and tags of subscribers already on the list.")
@click.option("--dry-run", is_flag=True, help="Check the file and report what would happen; change nothing.")
@click.option("--status", type=click.Choice([s for s in STATUSES if s != "pending"]), default=None,
              help="Import every row with this status, e.g. unsubscribed for a suppression list.")
@click.option("--resubscribe", is_flag=True,
              help="Subscribe again addresses that unsubscribed, bounced, complained or were erased.")
@pass_state
def import_(state: State, file: Path, tags: tuple[str, ...], update: bool, dry_run: bool, status: str | None,
            resubscribe: bool) -> None:
    """Import subscribers from a CSV file (Mailchimp, listmonk or plain columns).

    Rejected rows go to FILE.rejects.csv with a reason. The import is one transaction: if it
    fails or is interrupted, the list is exactly as before.

    \b
    Example:
      campaign subscribers import patients.csv --tag patients
    """
    from pipeline.audience.importing.write import ImportOptions, import_csv  # its own stage: loaded when used

    options = ImportOptions(tags=tags, update=update, dry_run=dry_run, status=status, resubscribe=resubscribe)
    store = state.store
    size = file.stat().st_size if file.is_file() else 0
    if size >= PROGRESS_FROM_BYTES:
        with click.progressbar(length=size, label=f"Importing {file.name}", file=sys.stderr) as bar:
            done = [0]

            def advance(position: int) -> None:
                bar.update(position - done[0])
                done[0] = position

            report = import_csv(store, file, options, advance)
    else:
        report = import_csv(store, file, options)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if report.warning_count > len(report.warnings):
        click.echo(f"warning: ... and {report.warning_count - len(report.warnings)} more", err=True)
    click.echo(f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
               f"rejected {report.rejected}")
    if report.rejects_path:
        click.echo(f"Rejected rows and their reasons: {report.rejects_path}", err=True)
    if dry_run:
        click.echo("Dry run: nothing was saved.", err=True)


@subscribers.command("export")
@click.option("--segment", help="A saved segment name or an expression.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@pass_state
def export(state: State, segment: str | None, fmt: str, output: Path | None) -> None:
    """Export subscribers (every status) as CSV or JSON Lines; importing the CSV back changes nothing.

    \b
    Example:
      campaign subscribers export --segment back-pain > back-pain.csv
    """
    from pipeline.audience.export import write_csv, write_jsonl

    writer = write_csv if fmt == "csv" else write_jsonl
    with state.store.reading() as conn:
        chosen = _segment(state, conn, segment)
        if output is None:
            count_ = writer(conn, sys.stdout, chosen)
        else:
            buffer = io.StringIO(newline="")
            count_ = writer(conn, buffer, chosen)
            write_atomic(output, buffer.getvalue())
    click.echo(f"Exported {count_} subscriber(s).", err=True)


@subscribers.command("list")
@click.option("--segment", help="Only recipients of this saved segment or expression.")
@click.option("--status", type=click.Choice(STATUSES), default=None,
              help="Only subscribers with this status (with --segment: its members with it), e.g. pending.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@pass_state
def list_(state: State, segment: str | None, status: str | None, limit: int | None) -> None:
    """List subscribers: email, first name, last name, status, tags (tab-separated).

    \b
    Examples:
      campaign subscribers list --segment '"vip" in tags' --limit 20
      campaign subscribers list --status pending
    """
    with state.store.reading() as conn:
        chosen = _segment(state, conn, segment)
        where = (chosen.where if status else chosen.recipients) if chosen else None
        for subscriber in iterate(conn, where, limit=limit, status=status):
            click.echo(_line(subscriber))


@subscribers.command("show")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of lines.")
@pass_state
def show(state: State, email: str, as_json: bool) -> None:
    """Everything the list holds about one subscriber: consent, history, messages, bounces, opens and clicks.

    The answer to a GDPR access request.

    \b
    Examples:
      campaign subscribers show ana@example.com
      campaign subscribers show ana@example.com --json > ana.json
    """
    from pipeline.audience.access import access_report, report_lines  # reads sends and tracking too

    with state.store.reading() as conn:
        report = access_report(conn, email)
    click.echo(json.dumps(report, ensure_ascii=False, indent=2) if as_json else "\n".join(report_lines(report)))


_AGE = re.compile(r"^\s*(\d{1,6})\s*([dhw])\s*$")


@subscribers.command("purge-pending")
@click.option("--older-than", "older_than", required=True, metavar="AGE",
              help="Signed up (or last asked again) longer ago than this: 30d, 12h or 2w.")
@click.option("--dry-run", is_flag=True, help="Count them; delete nothing.")
@NOW_OPTION
@pass_state
def purge_pending_(state: State, older_than: str, dry_run: bool, now: str | None) -> None:
    """Delete pending subscribers who never confirmed, with their tags and consent records.

    \b
    Example:
      campaign subscribers purge-pending --older-than 30d
    """
    found = _AGE.match(older_than)
    if not found:
        raise click.BadParameter(f"{older_than!r} is not an age like 30d, 12h or 2w", param_hint="--older-than")
    unit = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}[found.group(2)]
    with state.store.transaction(rollback=dry_run) as conn:
        purged = purge_pending(conn, parse_now(now)() - int(found.group(1)) * unit, SOURCE)
    click.echo(f"{'would purge' if dry_run else 'purged'} {purged}")


@subscribers.command("count")
@click.option("--segment", help="Count the recipients of this saved segment or expression.")
@pass_state
def count_(state: State, segment: str | None) -> None:
    """Count subscribers by status, or the recipients of a segment.

    \b
    Example:
      campaign subscribers count
    """
    with state.store.reading() as conn:
        if segment:
            click.echo(str(count(conn, _segment(state, conn, segment))))  # type: ignore[arg-type]
            return
        for status, number in count_by_status(conn).items():
            click.echo(f"{status}\t{number}")


def _fields(pairs: tuple[str, ...]) -> dict[str, object]:
    fields: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise SubscriberError(f"--field {pair!r} must look like name=value")
        fields[name.strip()] = field_value(value.strip())
    return fields


@subscribers.command("add")
@click.argument("email")
@click.option("--first-name")
@click.option("--last-name")
@click.option("--tag", "tags", multiple=True, help="Tag (repeatable).")
@click.option("--field", "fields", multiple=True, metavar="NAME=VALUE", help="Custom field (repeatable).")
@click.option("--timezone", help="IANA time zone, e.g. America/Los_Angeles.")
@pass_state
def add_(state: State, email: str, first_name: str | None, last_name: str | None, tags: tuple[str, ...],
         fields: tuple[str, ...], timezone: str | None) -> None:
    """Add one subscriber, or update one already on the list.

    \b
    Example:
      campaign subscribers add ana@example.com --first-name Ana --tag back-pain --field city=Portland
    """
    zone = None
    if timezone:
        zone = canonical_timezone(timezone)
        if zone is None:
            raise SubscriberError(f"unknown timezone {timezone!r}; use an IANA name like Europe/London")
    changes = Changes(first_name=clean_text(first_name), last_name=clean_text(last_name),
                      tags={clean_tag(t) for t in tags}, fields=_fields(fields), timezone=zone)
    with state.store.transaction() as conn:
        subscriber, new = add(conn, email, changes, SOURCE)
    click.echo(_line(subscriber))
    click.echo("Added." if new else "Updated.", err=True)


@subscribers.command("unsubscribe")
@click.argument("emails", nargs=-1, required=True)
@pass_state
def unsubscribe_(state: State, emails: tuple[str, ...]) -> None:
    """Unsubscribe addresses; they are never mailed again unless re-imported with --resubscribe.

    \b
    Example:
      campaign subscribers unsubscribe ana@example.com
    """
    with state.store.transaction() as conn:
        results = unsubscribe(conn, emails, SOURCE)
    for address, changed in results:
        click.echo(f"{address}\t{'unsubscribed' if changed else 'already unsubscribed'}")


@subscribers.command("tag")
@click.argument("tag_name", metavar="TAG")
@click.argument("emails", nargs=-1, required=True)
@pass_state
def tag_(state: State, tag_name: str, emails: tuple[str, ...]) -> None:
    """Add TAG to subscribers.

    \b
    Example:
      campaign subscribers tag back-pain ana@example.com ben@example.com
    """
    with state.store.transaction() as conn:
        added = tag(conn, emails, [tag_name])
    click.echo(f"tagged {added}")


@subscribers.command("untag")
@click.argument("tag_name", metavar="TAG")
@click.argument("emails", nargs=-1, required=True)
@pass_state
def untag_(state: State, tag_name: str, emails: tuple[str, ...]) -> None:
    """Remove TAG from subscribers.

    \b
    Example:
      campaign subscribers untag back-pain ana@example.com
    """
    with state.store.transaction() as conn:
        removed = untag(conn, emails, [tag_name])
    click.echo(f"untagged {removed}")


@subscribers.command("delete")
@click.argument("emails", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def delete_(state: State, emails: tuple[str, ...], yes: bool) -> None:
    """Erase subscribers: personal data removed, a hash kept so they are never mailed again.

    \b
    Example:
      campaign subscribers delete ana@example.com --yes
    """
    if not yes:
        click.confirm(f"Erase {len(emails)} subscriber(s) for good?", abort=True, err=True)
    with state.store.transaction() as conn:
        erased = [erase(conn, address, SOURCE) for address in emails]
    for address in erased:
        click.echo(f"{address}\terased")


@click.group()
def segments() -> None:
    """Saved segments and segment expressions.

    \b
    An expression is a condition written like Python, for example:
      "back-pain" in tags and city == "San Francisco"
      signed_up >= days_ago(90) and not (birth_year < 1960 or "pregnant" in tags)
      email.endswith("@example.com") or segment("new-patients")
    Fields: email, first_name, last_name, tags, status, timezone, signed_up and any custom field.
    Functions: days_ago(N), date("2026-03-01"), segment("saved-name"). Only subscribed
    addresses are counted as recipients.
    """


@segments.command("list")
@pass_state
def segments_list(state: State) -> None:
    """Saved segments from campaign.toml with their recipient counts.

    \b
    Example:
      campaign segments list
    """
    saved = state.workspace.segments
    with state.store.reading() as conn:
        for name in sorted(saved):
            click.echo(f"{name}\t{count(conn, resolve(conn, name, saved))}\t{saved[name]}")


@segments.command("show")
@click.argument("name")
@pass_state
def segments_show(state: State, name: str) -> None:
    """A saved segment's expression, recipient count and ten sample recipients.

    \b
    Example:
      campaign segments show back-pain
    """
    saved = state.workspace.segments
    if name not in saved:
        raise CampaignError(f"no saved segment {name!r} (known: {', '.join(sorted(saved)) or 'none'})")
    with state.store.reading() as conn:
        segment = resolve(conn, name, saved)
        click.echo(f"expression: {segment.expression}")
        click.echo(f"recipients: {count(conn, segment)}")
        for subscriber in sample(conn, segment):
            click.echo(_line(subscriber))


@segments.command("count")
@click.argument("expression")
@pass_state
def segments_count(state: State, expression: str) -> None:
    """Count the subscribed recipients matching EXPRESSION (or a saved segment's name).

    \b
    Example:
      campaign segments count '"back-pain" in tags and city == "San Francisco"'
    """
    with state.store.reading() as conn:
        click.echo(str(count(conn, resolve(conn, expression, state.workspace.segments))))
