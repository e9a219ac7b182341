"""Runner-side helpers that python actions import."""
