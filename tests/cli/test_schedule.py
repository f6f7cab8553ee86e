"""`schedule`, `unschedule`, `list`, `send-due` and `scheduler` as cron and systemd run them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.cli.test_sending import people
from tests.conftest import Campaign, edit
from tests.delivery.test_send_safety import assert_exactly_once, states
from tests.smtp_server import SmtpTestServer

NOW = "2026-11-23T12:00:00Z"
DUE = "2026-12-01T17:00:00Z"  # 09:00 in Los Angeles, campaign.toml's zone


def test_schedule_unschedule_and_list(campaign: Campaign) -> None:
    people(campaign, 3)
    done = campaign("schedule", "back-pain", "--at", "2026-12-01 09:00", "--now", NOW)
    assert (done.exit_code, done.stdout, done.stderr) == (0, "back-pain\tscheduled\t2026-12-01 17:00:00 UTC\n", "")
    listed = campaign("list", "--now", NOW)
    assert listed.stdout == ("back-pain\tscheduled\t2026-12-01 17:00:00 UTC\t0/0\t"
                             "Can acupuncture ease persistent back pain?\n")
    moved = campaign("schedule", "back-pain", "--at", "2026-12-02 08:00", "--tz", "Europe/London", "--now", NOW)
    assert moved.stdout == "back-pain\tscheduled\t2026-12-02 08:00:00 UTC\n"
    assert campaign("unschedule", "back-pain").stdout == "back-pain\tunscheduled\n"
    assert campaign("list").stdout.startswith("back-pain\tdraft\t-\t0/0\t")
    local = campaign("schedule", "back-pain", "--at", "2026-12-01 09:00", "--local-time", "--now", NOW)
    assert local.stdout == "back-pain\tscheduled\t2026-11-30 19:00:00 UTC\n"
    assert local.stderr == ("Each recipient gets it at 2026-12-01 09:00 in their own time zone (readers without "
                            "one: America/Los_Angeles); the first copies leave at 2026-11-30 19:00:00 UTC, when UTC+14 "
                            "reaches 2026-12-01 09:00.\n")


def test_schedule_refuses_the_past_and_skipped_times_and_explains_repeated_ones(campaign: Campaign) -> None:
    past = campaign("schedule", "back-pain", "--at", "2026-11-20 09:00", "--now", NOW)
    assert (past.exit_code, past.stderr) == (1, "campaign: error: 2026-11-20 09:00 America/Los_Angeles is in the "
                                                "past (it is 2026-11-23 04:00 there now)\n")
    gap = campaign("schedule", "back-pain", "--at", "2027-03-14 02:30", "--now", NOW)
    assert gap.stderr == ("campaign: error: 2027-03-14 02:30 does not exist in America/Los_Angeles (the clocks "
                          "skip that hour); the nearest valid times are 01:59 and 03:00\n")
    twice = campaign("schedule", "back-pain", "--at", "2027-11-07 01:30", "--now", NOW)
    assert (twice.exit_code, twice.stdout) == (0, "back-pain\tscheduled\t2027-11-07 08:30:00 UTC\n")
    assert twice.stderr == ("2027-11-07 01:30 happens twice in America/Los_Angeles (the clocks go back); using the "
                            "first, 01:30 PDT (08:30 UTC)\n")
    zone = campaign("schedule", "back-pain", "--at", "2026-12-01 09:00", "--tz", "Mars/Olympus")
    assert zone.stderr == ("campaign: error: unknown time zone 'Mars/Olympus'; use an IANA name like "
                           "America/Los_Angeles\n")
    late = campaign("schedule", "back-pain", "--at", "2026-11-24 09:00", "--local-time", "--now", "2026-11-23T20:00:00Z")
    assert late.stderr.startswith("campaign: error: 2026-11-24 09:00 has already passed where the day starts first")


def send_due(campaign: Campaign, server: SmtpTestServer, now: str, *args: str) -> subprocess.Popen[str]:
    db = ["--db", campaign.db_url] if campaign.db_url else []
    return subprocess.Popen([sys.executable, "-m", "pipeline", "--workspace", str(campaign.root), *db, "--transport",
                             server.url, "send-due", "--now", now, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_send_due_is_quiet_when_nothing_is_due_and_fails_only_for_real(campaign: Campaign,
                                                                        smtp_server: SmtpTestServer) -> None:
    idle = campaign("--transport", smtp_server.url, "send-due", "--quiet", "--now", NOW)
    assert (idle.exit_code, idle.stdout, idle.stderr) == (0, "", "")
    people(campaign, 2)
    campaign("schedule", "back-pain", "--at", "2026-12-01 09:00", "--now", NOW)
    down = campaign("--transport", "smtp://127.0.0.1:9", "send-due", "--quiet", "--now", DUE)
    assert down.exit_code == 1
    assert down.stderr == ("campaign: error: back-pain: cannot connect to smtp://127.0.0.1:9: [Errno 111] "
                           "Connection refused\n")
    broken = campaign("--transport", "carrier-pigeon:", "send-due", "--now", DUE)
    assert (broken.exit_code, broken.stderr) == (1, "campaign: error: unknown transport 'carrier-pigeon:': use "
                                                    "maildir:PATH, smtp://host[:port] or smtps://host[:port]\n")
    sent = campaign("--transport", smtp_server.url, "send-due", "--now", DUE)
    assert (sent.exit_code, sent.stdout) == (0, "back-pain: sent 2, finished\n")
    assert campaign("--transport", smtp_server.url, "send-due", "--quiet", "--now", DUE).stdout == ""


def test_four_send_due_processes_at_once_never_double_send(audience: Campaign, smtp_server: SmtpTestServer) -> None:
    addresses = people(audience, 40)
    audience("schedule", "back-pain", "--at", "2026-12-01 09:00", "--now", NOW)
    smtp_server.behaviour.delay = 0.005
    runs = [send_due(audience, smtp_server, DUE) for _ in range(4)]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    assert assert_exactly_once(audience, smtp_server, addresses) == 0


def start_scheduler(campaign: Campaign, server: SmtpTestServer, now: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pipeline", "--workspace", str(campaign.root), "--transport",
                             server.url, "scheduler", "--now", now],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_daemon_and_cron_together(campaign: Campaign, smtp_server: SmtpTestServer) -> None:
    addresses = people(campaign, 40)
    campaign("schedule", "back-pain", "--at", "2026-12-01 09:00", "--now", NOW)
    smtp_server.behaviour.delay = 0.005
    daemon = start_scheduler(campaign, smtp_server, DUE)
    crons = [send_due(campaign, smtp_server, DUE) for _ in range(2)]
    for run in crons:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    wait_for(lambda: "queued" not in states(campaign).values() and "sending" not in states(campaign).values())
    daemon.send_signal(signal.SIGTERM)
    _, log = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, log
    assert "scheduler stopped" in log
    assert assert_exactly_once(campaign, smtp_server, addresses) == 0


def test_a_slow_rate_gives_way_to_the_time_budget_and_to_sigterm(campaign: Campaign,
                                                                  smtp_server: SmtpTestServer) -> None:
    people(campaign, 5)
    edit(campaign.root / "campaign.toml", '# rate = "50/s"', 'rate = "1/h"')
    campaign("schedule", "back-pain", "--at", "2026-12-01 09:00", "--now", NOW)
    budget = send_due(campaign, smtp_server, DUE, "--max-seconds", "1")
    out, err = budget.communicate(timeout=60)  # the next slot is an hour away: the budget ends the wait
    assert (budget.returncode, out) == (0, "back-pain: sent 1, started for 5 recipient(s)\n"), err
    daemon = start_scheduler(campaign, smtp_server, DUE)
    wait_for(lambda: sum(smtp_server.recipients().values()) == 2)
    daemon.send_signal(signal.SIGTERM)
    _, log = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, log
    assert sorted(states(campaign).values()) == ["queued", "queued", "queued", "sent", "sent"]


def test_sigterm_mid_campaign_then_resume(campaign: Campaign, smtp_server: SmtpTestServer) -> None:
    addresses = people(campaign, 40)
    campaign("schedule", "back-pain", "--at", "2026-12-01 09:00", "--now", NOW)
    smtp_server.behaviour.delay = 0.02
    daemon = start_scheduler(campaign, smtp_server, DUE)
    wait_for(lambda: sum(smtp_server.recipients().values()) >= 3)
    daemon.send_signal(signal.SIGTERM)
    _, log = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, log
    assert "SIGTERM: stopping after the messages in flight" in log
    left = states(campaign)
    assert "unknown" not in left.values() and "sending" not in left.values()
    assert 0 < list(left.values()).count("queued") < 40
    resumed = send_due(campaign, smtp_server, DUE)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert out.endswith("finished\n")
    assert assert_exactly_once(campaign, smtp_server, addresses) == 0


def test_a_recurring_campaign_starts_lists_and_stops(campaign: Campaign) -> None:
    from tests.timing.test_tick import write_feed

    folder = campaign.root / "campaigns" / "monthly"
    folder.mkdir()
    (folder / "settings.toml").write_text('subject = "Digest {date:%B}"\nrecurrence = "monthly on day 1 at 09:00"\n'
                                          'source = "feed.xml"\n', encoding="utf-8")
    write_feed(folder / "feed.xml", [("Ginger tea", "ginger-tea", "2026-11-28")])
    not_recurring = campaign("schedule", "back-pain")
    assert (not_recurring.exit_code, not_recurring.stderr.splitlines()[-1]) == (
        2, "Error: back-pain is not recurring; give --at \"YYYY-MM-DD HH:MM\"")
    started = campaign("schedule", "monthly", "--now", NOW)
    assert started.stdout == "monthly\trecurring\t2026-12-01 17:00:00 UTC\n"
    assert started.stderr == "Recurring 'monthly on day 1 at 09:00'; next occurrence 2026-12-01 17:00:00 UTC.\n"
    assert "monthly\trecurring\t2026-12-01 17:00:00 UTC\t0/0\tDigest {date:%B}\n" in campaign("list", "--now", NOW).stdout
    assert campaign("unschedule", "monthly").stdout == "monthly\tunscheduled\n"
    assert "monthly\tdraft\t-" in campaign("list").stdout
    again = campaign("unschedule", "monthly")
    assert again.stderr == "campaign: error: monthly is not running as a recurring campaign\n"
