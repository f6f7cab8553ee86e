"""Settings: the workspace's campaign.toml and each campaign's settings.toml, typed and checked."""
