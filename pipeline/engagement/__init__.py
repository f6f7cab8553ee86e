"""Engagement: opt-in open and click tracking, what it recorded, and what it tells.

Nothing here runs unless [tracking] turns it on. A tracked send's copies carry signed links,
one per message and link (`tokens`), in place of their own (`links`); `campaign serve` redirects
them and serves the open pixel (web.tracking), recording each hit through `intake` into the
tables of `events`, with what privacy proxies and link scanners did marked apart (`agents`).
`report` turns them into figures and charts, `ab` picks a subject test's winner by them, and
segment expressions select readers by them (opened(), clicked()).
"""
