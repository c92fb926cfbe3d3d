"""Reinforcement learning: sample cost, seed dependence, and search against learned policies."""
