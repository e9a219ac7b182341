"""Runners: how Squall runs one action (see :mod:`squall.runners.base`).

Look runners up by name with :func:`squall.runners.registry.get_runner`.
"""
