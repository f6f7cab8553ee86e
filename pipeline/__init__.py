"""Turn articles into responsive educational newsletters and send them to segments of a list."""

__version__ = "0.1.0"
