"""The ``squall`` command: start the server and drive it through its API.

Modules:

- :mod:`squall.cli.client` -- a small HTTP client for the Squall API (and its
  event stream), plus where the CLI finds the API's URL and key;
- :mod:`squall.cli.follow` -- following an execution's output live until it ends;
- :mod:`squall.cli.output` -- tables, JSON and YAML;
- :mod:`squall.cli.main` -- the click commands and :func:`squall.cli.main.main`.
"""
