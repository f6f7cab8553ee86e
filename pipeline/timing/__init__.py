"""Timing: schedules, recurrences, the due tick that cron and the scheduler run, and digest feeds."""
