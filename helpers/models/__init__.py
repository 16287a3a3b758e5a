"""Models: the autoencoders, the VAE and its parts (encoders, decoders with their likelihood, priors, the PixelCNN
decoder), the evaluation classifier, and ``build``, which makes a model from the spec of a registered run."""
