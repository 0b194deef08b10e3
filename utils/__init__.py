"""Reusable, tested code of the course (attention, positions, a tiny GPT, training)."""

# Lets a notebook's setup cell tell this package from another module named `utils`.
__course__ = "llm-internals"
