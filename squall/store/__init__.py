"""Persistence: tables, migrations, repositories and the work queue."""
