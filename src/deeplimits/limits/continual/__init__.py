"""Continual family: learning from a sequence of tasks or a drifting stream (seeds 003, 004)."""
