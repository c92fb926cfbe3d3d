"""Trust family: bias that models absorb from their data (seeds 003, 004)."""
