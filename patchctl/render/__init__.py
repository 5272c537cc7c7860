"""Presenting results: text, JSON, CSV and HTML. Nothing here does I/O."""
