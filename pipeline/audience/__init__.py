"""The audience: subscribers, their import and export, segments, signed links and preferences."""
