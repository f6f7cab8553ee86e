from __future__ import annotations

import pytest

from pipeline.db.engine import Store
from pipeline.errors import StoreError
from pipeline.redact import redact_url


@pytest.mark.parametrize(("text", "redacted"), [
    ("unknown transport 'smtp+tls://newsuser:Hunter2@127.0.0.1': use maildir:PATH",
     "unknown transport 'smtp+tls://newsuser:***@127.0.0.1': use maildir:PATH"),
    ("cannot open database postgresql+psycopg://campaign:s3cret@db.clinic.example:5432/news: refused",
     "cannot open database postgresql+psycopg://campaign:***@db.clinic.example:5432/news: refused"),
    # Passwords typed without percent-encoding vanish whole, "@", "/", "#" and quotes included.
    ("postgresql://campaign:p@ss/w#rd@db/news", "postgresql://campaign:***@db/news"),
    ("\"smtp://news:it's@127.0.0.1\"", "\"smtp://news:***@127.0.0.1\""),
    ("redis://:only-a-password@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("from smtp://a:one@h1 to smtp://b:two@h2", "from smtp://a:***@h1 to smtp://b:***@h2"),
    # Nothing to hide: left as it was.
    ("smtp://news@clinic.example@127.0.0.1:587", "smtp://news@clinic.example@127.0.0.1:587"),
    ("smtp://127.0.0.1:587 refused", "smtp://127.0.0.1:587 refused"),
    ("smtp://[::1]:25 and me@clinic.example", "smtp://[::1]:25 and me@clinic.example"),
    ("sqlite:////srv/clinic/campaign.db", "sqlite:////srv/clinic/campaign.db"),
    ("user:password@host is not a URL", "user:password@host is not a URL"),
])
def test_passwords_in_urls_are_hidden(text: str, redacted: str) -> None:
    assert redact_url(text) == redacted


@pytest.mark.parametrize("url", [
    "postgresql://campaign:Hunter2@127.0.0.1:notaport/news",  # SQLAlchemy cannot parse it at all
    "postgresql+nodriver://campaign:Hunter2@127.0.0.1/news",
    "postgresql+psycopg://campaign:Hunter2@127.0.0.1:1/news",  # nothing listens on port 1
])
def test_database_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        Store(url)
    message = str(caught.value)
    assert "Hunter2" not in message and "campaign:***@127.0.0.1" in message and "\n" not in message
