"""`gafu prep`: originals → the training layout (D4, D5)."""
