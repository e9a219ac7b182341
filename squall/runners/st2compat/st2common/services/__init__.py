"""Services available to python actions."""
