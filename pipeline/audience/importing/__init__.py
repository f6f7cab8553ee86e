"""Subscriber files in: a CSV parsed (in a helper process for large files) and written in one transaction."""
