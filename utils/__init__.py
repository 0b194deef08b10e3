"""Reusable, tested code of the course (attention, positions, a tiny GPT, training)."""
