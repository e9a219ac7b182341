"""Squall's compatibility shim for StackStorm's ``st2reactor`` (sensor base classes only)."""

__version__ = "3.9.0"
