"""Orquesta (version 1.0) workflows: the definition model, its checks, and the conductor.

``spec`` reads and checks a definition and derives its task graph,
``machines`` holds the task and workflow status machines, ``conductor``
decides what runs next, and ``expressions`` evaluates YAQL and Jinja.
"""
