"""Training family: what makes deep nets slow or fragile to train (feature scales, seeds, slow gradients; seed 003)."""
