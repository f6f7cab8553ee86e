"""The sending loop as a caller sees it: how far a run is, told now and then and at its end."""

from __future__ import annotations

import pytest

from pipeline.clock import utcnow
from pipeline.db.engine import Store, default_url
from pipeline.delivery import loop
from pipeline.delivery.runs import SendOptions, SendReport
from pipeline.delivery.sending import begin_send, connection_factory, plan, run
from pipeline.settings.workspace import load_workspace
from tests.cli.test_sending import people
from tests.conftest import Campaign


def test_the_caller_hears_of_the_first_message_then_not_again_until_the_end(campaign: Campaign,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    people(campaign, 30)
    monkeypatch.setattr(loop, "PROGRESS_EVERY", 3600.0)  # nothing more within the run after the first message
    ws = load_workspace(campaign.root)
    store = Store(default_url(campaign.root))
    row = begin_send(store, plan(store, ws, "back-pain", None), "back-pain", utcnow())
    _, connect = connection_factory(ws, None)  # the workspace's Maildir outbox
    heard: list[tuple[int, int]] = []

    def progress(report: SendReport) -> None:
        heard.append((report.sent, report.failed))

    result = run(store, ws, row, connect, SendOptions(concurrency=1), progress=progress)
    store.close()
    assert result.report.sent == 30
    assert heard == [(1, 0), (30, 0)]
