"""`[sending] rate` across every worker: one schedule of sending slots in Redis.

Each message takes the next free slot from a small Lua script, which Redis runs atomically: the
slot is the later of "now" (Redis's own clock, so the machines' clocks do not matter) and the
previous slot plus the interval. This is a token bucket holding one token (the GCRA form), the
same even pace the in-process RateLimit keeps, summed over all workers on all machines.
"""

from __future__ import annotations

import time
from typing import Any

from pipeline.delivery.runs import RateLimit
from pipeline.errors import SendError
from pipeline.redact import redact_url

KEY = "campaign:rate:next"
GIVE_UP = 60.0  # seconds without Redis before a worker stops its batch rather than send unpaced

_NEXT_SLOT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
local after = slot + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', math.floor((after - now) / 1000) + 60000)
return slot - now
"""


class SharedRate(RateLimit):
    """A RateLimit whose slots are shared through Redis by every process that uses the same key."""

    def __init__(self, per_second: float | None, url: str, key: str = KEY) -> None:
        super().__init__(per_second)
        import redis

        self.url = url
        self.errors: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)
        self.client: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.script = self.client.register_script(_NEXT_SLOT)
        self.key = key

    @classmethod
    def shared(cls, text: str | None, url: str) -> RateLimit:
        """`[sending] rate` shared through the Redis at url; no rate: no limit, and no Redis needed."""
        local = RateLimit.parse(text)
        if not local.interval:
            return local
        if not url.startswith(("redis://", "rediss://")):
            raise SendError("[sending] rate across workers needs a Redis broker (redis://...); "
                            f"{redact_url(url)} is not one")
        return cls(1 / local.interval, url)

    def next_slot(self) -> float:
        until = time.monotonic() + GIVE_UP
        delay = 0.2
        while True:
            try:
                wait = int(self.script(keys=[self.key], args=[round(self.interval * 1_000_000)]))
                return time.monotonic() + wait / 1_000_000
            except self.errors as exc:
                # No slot without Redis: sending unpaced could exceed what the server allows.
                if time.monotonic() + delay > until:
                    raise SendError(f"the rate limit's Redis at {redact_url(self.url)} does not answer: {exc}") from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
