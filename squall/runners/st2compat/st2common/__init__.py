"""Squall's compatibility shim for StackStorm's ``st2common`` (actions only)."""

__version__ = "3.9.0"
