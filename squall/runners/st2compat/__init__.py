"""A tiny stand-in for the parts of StackStorm's ``st2common`` that actions import.

This directory (not the ``squall.runners.st2compat`` package) is put on the
PYTHONPATH of python-script action processes only, so that pack code doing
``from st2common.runners.base_action import Action`` keeps working. It is
written for Squall and uses only the standard library, because it runs inside
the pack's own interpreter.
"""
