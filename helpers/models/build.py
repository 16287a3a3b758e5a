"""Models from specs: the registry of runs (``helpers.studies.registry``) names each model by a spec such as
``{"kind": "vae", "encoder": "gru", "latent_dim": 32}``; ``build_model`` makes it. A spec is plain data, so the
model cache keys a trained model by it (``helpers.training.cache``).

- ``MODEL_KINDS``: the kind of a spec -> (class or builder, loss function). A new autoencoder is its class and
  one line here.
- ``ENCODERS``, ``DECODERS``, ``PRIORS``: the parts a VAE spec can name (``build_vae``). A new part is its class
  in a file of its own and one line here.
"""

from __future__ import annotations

import functools

from torch import nn

from .autoencoders import CNNAutoencoder, LSTMAutoencoder, ae_loss
from .classifier import Classifier, classifier_loss
from .decoders import CNNDecoder
from .encoders import CNNEncoder, GRUEncoder
from .pixelcnn import PixelCNNDecoder
from .priors import ClassMeansPrior, MixturePrior, StandardNormalPrior
from .vae import VAE, vae_loss
from .vqvae import VQVAE, vqvae_loss

__all__ = ["ENCODERS", "DECODERS", "PRIORS", "CLASS_INPUTS", "build_vae", "MODEL_KINDS", "build_model", "n_params"]

# Each part is called as part(latent_dim, n_classes, ...): the classes it takes (0 when it takes none).
ENCODERS = {"gru": GRUEncoder, "cnn": CNNEncoder}
DECODERS = {
    "cnn": CNNDecoder,
    "pixelcnn": functools.partial(PixelCNNDecoder, first_kernel=7, layers=3),  # 5 rows above a pixel
    "pixelcnn_local": functools.partial(PixelCNNDecoder, first_kernel=3, layers=2),  # 2 rows: more left to z
}
# A prior is called as prior(latent_dim, n_classes, n_components, encoder).
PRIORS = {
    "normal": lambda latent_dim, n_classes, n_components, encoder: StandardNormalPrior(latent_dim),
    "class_means": lambda latent_dim, n_classes, n_components, encoder: ClassMeansPrior(latent_dim, n_classes),
    "mog": lambda latent_dim, n_classes, n_components, encoder: MixturePrior("mog", n_components, latent_dim),
    "vamp": lambda latent_dim, n_classes, n_components, encoder: MixturePrior("vamp", n_components, latent_dim,
                                                                            encoder),
}
# Which parts of a conditional VAE see the class: both (Sohn et al., 2015: q(z|x,c) and p(x|z,c); the course
# recipe), the decoder only, or neither (then only a class prior makes it conditional).
CLASS_INPUTS = {"both": ("encoder", "decoder"), "decoder": ("decoder",), "none": ()}


def build_vae(encoder: str = "cnn", latent_dim: int = 32, n_classes: int = 0, beta: float = 1.0,
              class_input: str = "both", class_prior: bool = False, kl_warmup: float = 0.0, binarize: bool = False,
              prior: str = "normal", n_components: int = 0, decoder: str = "cnn", free_bits: float = 0.0) -> VAE:
    """The VAE a spec names: encoder, decoder and prior by their names in ``ENCODERS``, ``DECODERS`` and
    ``PRIORS``; ``class_prior=True`` is the prior "class_means"; ``class_input`` a key of ``CLASS_INPUTS``.
    The parts are built encoder, decoder, prior, so that a seed gives the same initial weights as always."""
    prior = "class_means" if class_prior else prior
    for name, value, allowed in [("encoder", encoder, ENCODERS), ("decoder", decoder, DECODERS),
                                 ("class_input", class_input, CLASS_INPUTS), ("prior", prior, PRIORS)]:
        if value not in allowed:
            raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    if prior in ("mog", "vamp") and n_classes:
        raise ValueError(f"a learned prior ({prior!r}) is unconditional: n_classes must be 0")
    if prior == "class_means" and not n_classes:
        raise ValueError("class_prior=True needs n_classes > 0")
    sees_class = CLASS_INPUTS[class_input]
    enc = ENCODERS[encoder](latent_dim, n_classes=n_classes if "encoder" in sees_class else 0)
    dec = DECODERS[decoder](latent_dim, n_classes=n_classes if "decoder" in sees_class else 0)
    return VAE(enc, dec, PRIORS[prior](latent_dim, n_classes, n_components, enc), latent_dim, n_classes, beta,
               kl_warmup, binarize, free_bits)


MODEL_KINDS = {
    "lstm_ae": (LSTMAutoencoder, ae_loss),
    "cnn_ae": (CNNAutoencoder, ae_loss),
    "vae": (build_vae, vae_loss),
    "classifier": (Classifier, classifier_loss),
    "vqvae": (VQVAE, vqvae_loss),
}


def build_model(spec: dict) -> tuple[nn.Module, callable]:
    """A model and its loss function from a spec such as {"kind": "vae", "encoder": "gru", "beta": 1.0}: the
    kind names an entry of ``MODEL_KINDS``, the other keys are its arguments."""
    spec = dict(spec)
    kind = spec.pop("kind")
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(MODEL_KINDS)}")
    make, loss_fn = MODEL_KINDS[kind]
    return make(**spec), loss_fn


def n_params(model: nn.Module) -> int:
    """Number of trainable and frozen parameters."""
    return int(sum(p.numel() for p in model.parameters()))
