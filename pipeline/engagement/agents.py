"""Who made a hit: a reader's browser or mail client, or a machine acting before any reader.

Machine hits are recorded, and counted apart ("machine opens", "machine clicks"):

- Apple Mail Privacy Protection loads every image of every message through Apple's proxies,
  opened or not: a bare "Mozilla/5.0" user agent, or an address in Apple's 17.0.0.0/8.
- Gmail's image proxy ("GoogleImageProxy") fetches a message's images when it is shown, but
  also, for some senders, once as it is delivered: a fetch within PREFETCH of sending is that.
- Link scanners (mail security gateways, Safe Links and the like) fetch links before the reader
  sees the message: HEAD requests, known scanner and library user agents, no user agent at all,
  and a message whose links were clicked two or more at a time, within BURST of each other (no
  reader clicks two links of one email that fast; see events.mark_bursts).
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta

PREFETCH = timedelta(seconds=120)
BURST = timedelta(seconds=2)

BROWSER = "browser"
APPLE = "apple-proxy"
GOOGLE = "google-proxy"
YAHOO = "yahoo-proxy"
SCANNER = "scanner"
HEAD = "head"
NONE = "none"
_APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
_SCANNERS = re.compile(
    r"bot\b|bot/|crawler|spider|scanner|python-|python/|curl/|wget/|go-http-client|java/|okhttp|libwww|"
    r"httpclient|axios|node-fetch|barracuda|mimecast|proofpoint|symantec|messagelabs|forcepoint|trendmicro|"
    r"sophos|ironport|safelinks|urldefense|zscaler|microsoft office existence discovery", re.IGNORECASE)


def _apple_address(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address) in _APPLE_NETWORK
    except ValueError:
        return False


def classify(kind: str, method: str, user_agent: str, address: str | None,
             since_sent: timedelta | None) -> tuple[str, bool]:
    """The user agent's class, and whether the hit was a machine's rather than a reader's."""
    agent = user_agent.strip()
    if method == "HEAD":
        return HEAD, True
    if not agent:
        return NONE, True
    if "googleimageproxy" in agent.lower():
        # Only images go through it; a fetch as the message arrives is Gmail's, not the reader's.
        return GOOGLE, kind == "open" and since_sent is not None and since_sent < PREFETCH
    if agent == "Mozilla/5.0" or (kind == "open" and _apple_address(address)):
        return APPLE, True
    if "yahoomailproxy" in agent.lower():
        return YAHOO, False  # fetched as the reader opens it
    if _SCANNERS.search(agent):
        return SCANNER, True
    return BROWSER, False
