"""`campaign report`: what readers did with a campaign, as a table, JSON or an HTML page with charts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pipeline.cli.context import State, pass_state


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _table(data: dict[str, Any]) -> list[str]:
    lines = [f"{data['campaign']}\t{data['subject']}" if data["subject"] else data["campaign"], ""]
    rows = [("sent", f"{data['sent']:,}"), ("delivered", f"{data['delivered']:,}"),
            ("opens", (f"{data['opens']:,}, unique {data['unique_opens']:,} ({_percent(data['open_rate'])}), "
                       f"machine {data['machine_opens']:,}")),
            ("clicks", (f"{data['clicks']:,}, unique {data['unique_clicks']:,} ({_percent(data['click_rate'])}), "
                        f"machine {data['machine_clicks']:,}")),
            ("unsubscribes", f"{data['unsubscribes']:,} ({_percent(data['unsubscribe_rate'])})"),
            ("bounces", f"{data['bounces']:,}"), ("complaints", f"{data['complaints']:,}")]
    lines += [f"{name:<14}{value}" for name, value in rows]
    if data["links"]:
        lines += ["", f"{'clicks':>7}  {'unique':>7}  link"]
        lines += [f"{link['clicks']:>7,}  {link['unique_clicks']:>7,}  {link['url']}" for link in data["links"]]
    test = data["ab"]
    if test:
        lines += ["", f"{'variant':<8}{'sent':>8}{'opened':>10}{'clicked':>10}  subject"]
        winner = (test["winner"] or {}).get("variant")
        for v in test["variants"]:
            mark = "  (winner)" if v["variant"] == winner else ""
            lines.append(f"{v['variant']:<8}{v['sent']:>8,}{_percent(v['open_rate']):>10}{_percent(v['click_rate']):>10}"
                         f"  {v['subject']}{mark}")
        if not winner:
            lines.append(f"the winner, by {test['metric']}, goes to everyone else at {test['wait_until']:%Y-%m-%d %H:%M} UTC")
    return lines


@click.command()
@click.argument("slug", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Also write a self-contained HTML report with charts to FILE.")
@pass_state
def report(state: State, slug: str | None, as_json: bool, html_file: Path | None) -> None:
    """What readers did with SLUG: opens, clicks, unsubscribes and bounces, by link, hour, segment and time zone,
    and a subject test's variants; without SLUG, one line per campaign with its rates.

    Opens and clicks are counted only when [tracking] is on. Machine opens and clicks (privacy
    proxies, link scanners) are counted apart and in no rate.

    \b
    Examples:
      campaign report
      campaign report back-pain
      campaign report back-pain --json
      campaign report back-pain --html back-pain-report.html
    """
    from pipeline.engagement.report import report as figures
    from pipeline.engagement.report import summary

    if slug is None:
        if html_file is not None:
            raise click.UsageError("--html needs a campaign: campaign report SLUG --html FILE")
        lines = summary(state.store, state.workspace)
        if as_json:
            click.echo(json.dumps(lines, indent=2))
            return
        for line in lines:
            click.echo(f"{line['campaign']}\tsent {line['sent']}\topened {_percent(line['open_rate'])}\t"
                       f"clicked {_percent(line['click_rate'])}\tunsubscribed {_percent(line['unsubscribe_rate'])}\t"
                       f"bounced {line['bounces']}")
        if not lines:
            click.echo("No campaign has been sent yet.", err=True)
        return
    data = figures(state.store, state.workspace, slug)
    if html_file is not None:
        from pipeline.engagement.report_html import render
        from pipeline.files import write_atomic

        write_atomic(html_file, render(data))
        click.echo(f"Wrote {html_file}", err=True)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo("\n".join(_table(data)))
