"""Squall: event-driven automation for operations teams."""

__version__ = "0.1.0"
