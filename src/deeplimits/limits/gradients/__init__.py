"""Gradients family: limits of gradient-based training (Shalev-Shwartz, Shamir, Shammah 2017; seed 001)."""
