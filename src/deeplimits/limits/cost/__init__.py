"""Cost family: what the compute of a deep net buys, and what compression keeps (seed 004)."""
