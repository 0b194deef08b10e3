"""Project maintenance tools (not part of the course package)."""
