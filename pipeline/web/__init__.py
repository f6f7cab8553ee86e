"""The web side: the public unsubscribe and preferences app, the local preview, and headless Chromium."""
