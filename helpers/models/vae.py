"""The variational autoencoder (Kingma & Welling, 2014), built from three parts: an encoder q(z|x, c)
(``helpers.models.encoders``), a decoder with its likelihood p(x|z, c) (``helpers.models.decoders``,
``helpers.models.pixelcnn``) and a prior p(z|c) (``helpers.models.priors``). Loss in nats per image.

What training and evaluation call on a VAE, and nothing else (``y`` are class labels (B,) int64, or None for an
unconditional model; the VAE turns them into the one-hot c that its parts take):

- ``encode(x, y)`` -> mean and log-variance (B, D) of q(z|x, y); ``reparameterize(mu, logvar)`` -> z;
- ``log_likelihood(x, z, y)`` -> log p(x|z, y), (B,) nats; ``decode_logits(z, y, x)`` -> Bernoulli logits;
- ``decode(z, y, seed)`` -> drawings (B, 1, 28, 28), pixel probabilities or, autoregressive, binary draws;
- ``log_prior(z, y)``, ``kl(mu, logvar, y, z)``, ``sample_prior(n, y, generator)``, ``class_mean(z, y)``;
- ``one_hot(y)``; attributes ``latent_dim``, ``n_classes``, ``beta``, ``kl_warmup``, ``free_bits``, ``binarize``, and
  the parts ``encoder``, ``decoder``, ``prior``.

A new encoder, decoder or prior is a class with the methods its module's docstring lists, in a file of its own,
and one entry in ``helpers.models.build`` so that a registered run can name it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["VAE", "vae_loss", "binarize", "model_inputs"]


class VAE(nn.Module):
    """A VAE of parts: ``encoder`` (x, c) -> (mu, logvar), ``decoder`` with its likelihood, ``prior`` p(z|y).

    ``n_classes`` > 0 makes it class-conditional: the labels y go to whichever parts take the class (each part's
    ``n_classes``, or a prior's ``conditional``). ``beta`` weights the KL term of ``vae_loss`` (1 gives the ELBO);
    ``kl_warmup`` > 0 raises that weight linearly from 0 to ``beta`` over that fraction of training (KL annealing,
    Bowman et al., 2016), so the decoder learns to use z before the KL term pulls q(z|x) to the prior.
    ``free_bits`` > 0 (nats per latent dimension) makes the loss charge each dimension's KL, averaged over the batch,
    at least that much (Kingma et al., 2016, "Improving Variational Inference with Inverse Autoregressive Flow",
    eq. 15): below it, a dimension's KL costs nothing, so a strong decoder gains nothing by leaving z unused.
    ``binarize=True`` models binary drawings: ``vae_loss`` draws each pixel of a training batch as a coin with the
    grey pixel's intensity (dynamic binarization, Burda et al., 2016), and held-out drawings are read as one fixed
    draw (``model_inputs``), so that the Bernoulli decoder's -ELBO is the bound of a log-likelihood.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, prior: nn.Module, latent_dim: int,
                 n_classes: int = 0, beta: float = 1.0, kl_warmup: float = 0.0, binarize: bool = False,
                 free_bits: float = 0.0):
        super().__init__()
        if not 0 <= kl_warmup <= 1:
            raise ValueError(f"kl_warmup must be a fraction of training in [0, 1], got {kl_warmup!r}")
        if not free_bits >= 0:
            raise ValueError(f"free_bits must be >= 0 nats per latent dimension, got {free_bits!r}")
        if decoder.autoregressive and not binarize:
            raise ValueError("an autoregressive decoder models binary drawings: it needs binarize=True")
        takes_class = [encoder.n_classes, decoder.n_classes, n_classes if prior.conditional else 0]
        if any(k not in (0, n_classes) for k in takes_class):
            raise ValueError(f"the parts take {takes_class} classes (encoder, decoder, prior); the VAE has {n_classes}")
        if prior.conditional and not n_classes:
            raise ValueError("a prior of each class needs n_classes > 0")
        self.latent_dim, self.n_classes = latent_dim, n_classes
        self.beta = float(beta)
        self.kl_warmup = float(kl_warmup)
        self.free_bits = float(free_bits)
        self.binarize = bool(binarize)
        # Built in this order by helpers.models.build, so that the same seed gives the same initial weights.
        self.encoder, self.decoder, self.prior = encoder, decoder, prior
        # The long-standing private form (the hook gets the module), not the public name newer torch releases add.
        self._register_load_state_dict_pre_hook(_renamed_prior_keys, with_module=True)

    def one_hot(self, y: torch.Tensor | None) -> torch.Tensor | None:
        if not self.n_classes:
            return None
        if y is None:
            raise ValueError("a conditional VAE needs the class labels y")
        return F.one_hot(y, self.n_classes).float()

    def encode(self, x, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.one_hot(y) if self.encoder.n_classes else None
        return self.encoder(x, c)  # (B, D) mean, (B, D) log-variance

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def _decoder_class(self, y) -> torch.Tensor | None:
        return self.one_hot(y) if self.decoder.n_classes else None

    def decode_logits(self, z, y=None, x=None) -> torch.Tensor:
        """Bernoulli logits (B, 1, 28, 28); an autoregressive decoder needs the drawings x it predicts."""
        return self.decoder(z, self._decoder_class(y), x)

    def decode(self, z, y=None, seed: int = 0) -> torch.Tensor:
        """Drawings (B, 1, 28, 28) of codes z: the factorized decoder's pixel probabilities, or binary drawings
        that the autoregressive decoder draws pixel by pixel from noise seeded with ``seed``."""
        return self.decoder.decode(z, self._decoder_class(y), seed)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor, y=None) -> torch.Tensor:
        """log p(x|z, y) summed over the pixels, (B,) in nats."""
        return self.decoder.log_likelihood(x, z, self._decoder_class(y))

    def class_mean(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """The centre of class y's part of the prior for each row of z (..., D): zeros, or the learned m_y."""
        return self.prior.class_mean(z, y)

    def log_prior(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """log p(z|y), summed over the latent dimensions: (..., D) -> (...), in nats."""
        return self.prior.log_prob(z, y)

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, y=None, z=None) -> torch.Tensor:
        """KL(q(z|x) || p(z|y)) in nats: (B, D) in closed form, or (B, 1), a one-sample estimate at ``z``, for a
        prior that does not factorize."""
        return self.prior.kl(mu, logvar, y, z)

    def forward(self, x, y=None):
        mu, logvar = self.encode(x, y)
        z = self.reparameterize(mu, logvar)
        return self.decode_logits(z, y, x), mu, logvar

    @torch.no_grad()
    def sample_prior(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """n codes (n, D) from p(z|y) on the CPU, from noise of ``generator`` (a CPU torch.Generator)."""
        return self.prior.sample(n, y, generator)


def _renamed_prior_keys(module, state_dict, prefix, *args):
    """Checkpoints written before the prior became a part named a class prior's means ``prior_means`` and a
    learned prior ``learned_prior``: both load as ``prior``."""
    for old, new in (("prior_means", "prior.means"), ("learned_prior.", "prior.")):
        for key in [k for k in state_dict if k.startswith(prefix + old)]:
            state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)


def binarize(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A fixed binarization of grey drawings: each pixel is 1 with probability its intensity, from uniform
    noise of a CPU generator seeded with ``seed`` (the same on every device, and for the same drawings the same
    draw every time). Binary drawings come back unchanged."""
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)).to(x.device)
    return (u < x).to(x.dtype)


def model_inputs(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """The drawings X as the model reads them: a VAE of binary drawings (``binarize=True``) their fixed
    binarization (``binarize``, seed 0, drawn once for the whole set), any other model X itself."""
    return binarize(X) if getattr(model, "binarize", False) else X


def vae_loss(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, beta: float | None = None,
             progress: float = 1.0):
    """Negative ELBO in nats per image: Bernoulli reconstruction (binary cross-entropy summed over the 784
    pixels) + beta * KL to the prior summed over latent dimensions, both averaged over the images. ``beta``
    defaults to the model's own (``VAE.beta``), scaled by min(1, progress / kl_warmup) during a KL warm-up;
    ``progress`` is the fraction of training done (the training loop passes it; held-out losses use 1).
    A binarized model draws a training batch anew; held-out drawings must come binary (``model_inputs``).
    With ``VAE.free_bits`` = lambda, the loss's KL term is sum_j max(lambda, mean over the batch of KL_j) over the
    latent dimensions j (a prior without a closed-form KL gives one column, held at lambda * D); "kl" stays the KL.
    Kingma & Welling (2014), "Auto-Encoding Variational Bayes", eq. 10 with the KL of Appendix B."""
    beta = model.beta if beta is None else beta
    if model.kl_warmup:
        beta = beta * min(1.0, progress / model.kl_warmup)
    if model.binarize and model.training:
        x = torch.bernoulli(x)
    elif model.binarize and not bool(((x == 0) | (x == 1)).all()):
        raise ValueError("a VAE of binary drawings scores binary drawings: give model_inputs(model, X), not grey X")
    mu, logvar = model.encode(x, y)
    z = model.reparameterize(mu, logvar)
    rec = -model.log_likelihood(x, z, y).mean()
    kl_terms = model.kl(mu, logvar, y, z)  # (B, D), or (B, 1) for a one-sample estimate
    kl = kl_terms.sum(1).mean()
    charged = kl
    if model.free_bits:
        floor = model.free_bits * model.latent_dim / kl_terms.shape[1]
        charged = kl_terms.mean(0).clamp(min=floor).sum()
    return {"loss": rec + beta * charged, "rec": rec, "kl": kl}
