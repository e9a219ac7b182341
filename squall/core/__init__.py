"""Squall's pure core: parameter and template semantics.

Nothing in this package does I/O (no database, network, files or clock);
whatever it needs from outside, such as datastore values, is handed in by
the caller.
"""
