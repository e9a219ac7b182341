"""The HTTP API: StackStorm-compatible /api/v1, /auth/v1 and /stream/v1."""
