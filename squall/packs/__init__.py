"""Pack content: reading StackStorm-compatible packs from disk."""

from squall.packs.loader import (
    BUILTIN_PACKS_DIR,
    LoadedPack,
    discover_packs,
    load_pack,
    load_packs,
    load_yaml,
)

__all__ = [
    "BUILTIN_PACKS_DIR",
    "LoadedPack",
    "discover_packs",
    "load_pack",
    "load_packs",
    "load_yaml",
]
