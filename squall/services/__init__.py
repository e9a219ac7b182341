"""Long-running services: each an asyncio task with a start and a stop."""
