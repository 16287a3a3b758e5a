"""Training: the one training loop (checkpoints, exact resume after Ctrl-C) and the model cache."""
