"""Distillation: registered KD losses, feature capture by module path, and the training loop."""
