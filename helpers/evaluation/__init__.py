"""Evaluation of trained models: running them, reconstructions, likelihood bounds, samplers, the judge's numbers,
latent spaces. Nothing here trains."""
