"""Reasoning family: rules, algorithms and abstractions that must generalise beyond the training data."""
