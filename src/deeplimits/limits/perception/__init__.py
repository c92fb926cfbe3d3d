"""Perception family: vision failures (same-different, adversarial, fooling, transforms, shortcuts, data hunger)."""
