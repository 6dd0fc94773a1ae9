"""Typed settings plumbing: flags built from settings dataclasses (flags.py)."""
