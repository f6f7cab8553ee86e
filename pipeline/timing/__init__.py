"""Timing: schedules, recurrences, the due tick that cron and the scheduler run, and digest feeds."""

DEFAULT_BUDGET = 50.0  # seconds a tick starts new messages for: room for one run in a one-minute cron slot
