"""Training family: what makes deep nets costly or fragile to train (feature scales, hyperparameters, seeds, slow gradients; seed 003)."""
