"""Models. Hyperparameters of the course report are the defaults.

Shapes: images are (B, 1, 28, 28) float32 in [0, 1]; a drawing read "row by row" is a sequence of 28 rows
of 28 pixels, (B, 28, 28).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .classifier import Classifier, classifier_loss
from .pixel import PIXEL_DECODERS, PixelCNNDecoder
from .priors import PRIOR_KINDS, MixturePrior, log_normal

__all__ = [
    "LSTMAutoencoder", "CNNAutoencoder", "ae_loss", "GRUEncoder", "CNNEncoder", "CNNDecoder", "VAE",
    "binarize", "kl_to_standard_normal", "kl_to_normal", "vae_loss", "MODEL_KINDS",
    "n_params",
]

# ---------------------------------------------------------------------------------------------------
# Autoencoders (per-pixel MSE loss)
# ---------------------------------------------------------------------------------------------------


class LSTMAutoencoder(nn.Module):
    """Rows as a time series, as in the course report. Encoder: 2-layer LSTM (hidden 128) over the 28 rows;
    the last layer's final hidden state -> linear -> latent. Decoder: latent -> linear -> 128, the same vector
    fed at each of the 28 steps of a 2-layer LSTM whose hidden size is the row width (28): its outputs are the
    reconstructed rows directly (an LSTM output lies in (-1, 1); no output layer)."""

    def __init__(self, input_dim: int = 28, hidden_dim: int = 128, latent_dim: int = 128, num_layers: int = 2):
        super().__init__()
        self.encoder = nn.LSTM(input_dim, hidden_dim, num_layers, batch_first=True)
        self.to_latent = nn.Linear(hidden_dim, latent_dim)
        self.from_latent = nn.Linear(latent_dim, hidden_dim)
        self.decoder = nn.LSTM(hidden_dim, input_dim, num_layers, batch_first=True)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.reshape(x.shape[0], 28, 28)  # (B, T=28 rows, 28 pixels)
        _, (h, _) = self.encoder(seq)  # h: (layers, B, H)
        return self.to_latent(h[-1])  # (B, latent)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        step_input = self.from_latent(z).unsqueeze(1).expand(-1, 28, -1)  # (B, 28, H), same at every step
        rows, _ = self.decoder(step_input)  # (B, 28 rows, 28 pixels)
        return rows.unsqueeze(1)  # (B, 1, 28, 28)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class CNNAutoencoder(nn.Module):
    """Conv(1->16, 3x3, s2) -> ReLU -> Conv(16->32, 3x3, s2) -> ReLU -> linear 32*7*7 -> latent, and the
    mirror image back (linear, two transposed convolutions, sigmoid output)."""

    def __init__(self, latent_dim: int = 64):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),  # (B, 16, 14, 14)
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),  # (B, 32, 7, 7)
            nn.Flatten(), nn.Linear(32 * 7 * 7, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 32 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
            nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # (B, 16, 14, 14)
            nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid(),  # (B, 1, 28, 28)
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def ae_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None,
            progress: float = 1.0) -> dict[str, torch.Tensor]:
    """Per-pixel MSE (mean over pixels and images)."""
    return {"loss": F.mse_loss(model(x), x)}


# ---------------------------------------------------------------------------------------------------
# VAEs (loss in nats per image)
# ---------------------------------------------------------------------------------------------------


class GRUEncoder(nn.Module):
    """Bidirectional GRU (hidden 256) over the 28 rows; the final states of both directions -> mean and
    log-variance. With ``n_classes`` > 0, the one-hot class is appended to every row (conditional VAE)."""

    def __init__(self, latent_dim: int = 32, hidden_dim: int = 256, n_classes: int = 0):
        super().__init__()
        self.n_classes = n_classes
        self.gru = nn.GRU(28 + n_classes, hidden_dim, batch_first=True, bidirectional=True)
        self.mu = nn.Linear(2 * hidden_dim, latent_dim)
        self.logvar = nn.Linear(2 * hidden_dim, latent_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        seq = x.reshape(x.shape[0], 28, 28)  # (B, 28, 28)
        if self.n_classes:
            seq = torch.cat([seq, c.unsqueeze(1).expand(-1, 28, -1)], dim=2)  # (B, 28, 28 + K)
        _, h = self.gru(seq)  # (2, B, H): forward and backward final states
        h = torch.cat([h[0], h[1]], dim=1)  # (B, 2H)
        return self.mu(h), self.logvar(h)


class CNNEncoder(nn.Module):
    """Conv(1->32, s2) -> Conv(32->64, s2) -> Conv(64->128, s1), ReLUs, then mean and log-variance.
    With ``n_classes`` > 0, the one-hot class enters as K constant extra input channels."""

    def __init__(self, latent_dim: int = 32, n_classes: int = 0):
        super().__init__()
        self.n_classes = n_classes
        self.conv = nn.Sequential(
            nn.Conv2d(1 + n_classes, 32, 3, stride=2, padding=1), nn.ReLU(),  # (B, 32, 14, 14)
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),  # (B, 64, 7, 7)
            nn.Conv2d(64, 128, 3, stride=1, padding=1), nn.ReLU(),  # (B, 128, 7, 7)
            nn.Flatten(),
        )
        self.mu = nn.Linear(128 * 7 * 7, latent_dim)
        self.logvar = nn.Linear(128 * 7 * 7, latent_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.n_classes:
            x = torch.cat([x, c[:, :, None, None].expand(-1, -1, 28, 28)], dim=1)  # (B, 1 + K, 28, 28)
        h = self.conv(x)
        return self.mu(h), self.logvar(h)


class CNNDecoder(nn.Module):
    """linear -> 128x7x7 -> ConvT(128->64, 4x4, s2) -> ConvT(64->32, 4x4, s2) -> Conv(32->1, 3x3).
    Returns Bernoulli logits (B, 1, 28, 28); sigmoid gives pixel probabilities. With ``n_classes`` > 0 the
    one-hot class is concatenated to z."""

    def __init__(self, latent_dim: int = 32, n_classes: int = 0):
        super().__init__()
        self.n_classes = n_classes
        self.net = nn.Sequential(
            nn.Linear(latent_dim + n_classes, 128 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (128, 7, 7)),
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.ReLU(),  # (B, 64, 14, 14)
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),  # (B, 32, 28, 28)
            nn.Conv2d(32, 1, 3, padding=1),  # (B, 1, 28, 28) logits
        )

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_classes:
            z = torch.cat([z, c], dim=1)
        return self.net(z)


class VAE(nn.Module):
    """Variational autoencoder (Kingma & Welling, 2014) with a GRU or CNN encoder and a CNN decoder.

    ``n_classes`` > 0 makes it class-conditional. ``class_input`` says which parts see the one-hot class c:
    "both" (Sohn et al., 2015: encoder q(z|x,c) and decoder p(x|z,c); the course recipe), "decoder" or
    "none". ``class_prior=True`` replaces the prior N(0, I) by p(z|c) = N(m_c, I) with a learned mean m_c per
    class, so each class gets a region of the latent space; sampling a class then means sampling its region.
    ``kl_warmup`` > 0 raises the KL weight linearly from 0 to ``beta`` over that fraction of training (KL
    annealing, Bowman et al., 2016), so the decoder learns to use z before the KL term pulls q(z|x) to the prior.
    ``binarize=True`` models binary drawings: ``vae_loss`` draws each pixel of a training batch as a coin with
    the grey pixel's intensity (dynamic binarization, Burda et al., 2016) and held-out batches as a fixed draw
    (``binarize``), so that the Bernoulli decoder's -ELBO is the bound of a log-likelihood.
    ``prior`` "mog" or "vamp" learns an unconditional mixture prior of ``n_components`` with the model
    (``helpers.priors``). ``decoder="pixelcnn"`` (or "pixelcnn_local", ``helpers.PIXEL_DECODERS``) replaces the
    factorized decoder by an autoregressive one on binary drawings (``helpers.pixel``; needs ``binarize=True``):
    ``decode`` then draws pixel by pixel.
    """

    def __init__(self, encoder: str = "cnn", latent_dim: int = 32, n_classes: int = 0, beta: float = 1.0,
                 class_input: str = "both", class_prior: bool = False, kl_warmup: float = 0.0,
                 binarize: bool = False, prior: str = "normal", n_components: int = 0, decoder: str = "cnn"):
        super().__init__()
        for name, value, allowed in [("encoder", encoder, ("gru", "cnn")),
                                     ("decoder", decoder, ("cnn", *PIXEL_DECODERS)),
                                     ("class_input", class_input, ("both", "decoder", "none")),
                                     ("prior", prior, ("normal", *PRIOR_KINDS))]:
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if class_prior and not n_classes:
            raise ValueError("class_prior=True needs n_classes > 0")
        if prior != "normal" and n_classes:
            raise ValueError(f"a learned prior ({prior!r}) is unconditional: n_classes must be 0")
        if decoder != "cnn" and not binarize:
            raise ValueError(f"decoder={decoder!r} models binary drawings: it needs binarize=True")
        self.latent_dim, self.n_classes = latent_dim, n_classes
        if not 0 <= kl_warmup <= 1:
            raise ValueError(f"kl_warmup must be a fraction of training in [0, 1], got {kl_warmup!r}")
        self.beta = float(beta)  # KL weight of vae_loss; 1 gives the ELBO
        self.kl_warmup = float(kl_warmup)  # the first fraction of training raises the KL weight from 0 to beta
        self.binarize = bool(binarize)  # trained and scored on binary drawings (vae_loss)
        k_enc = n_classes if class_input == "both" else 0
        k_dec = n_classes if class_input in ("both", "decoder") else 0
        self.encoder = (GRUEncoder(latent_dim, n_classes=k_enc) if encoder == "gru"
                        else CNNEncoder(latent_dim, n_classes=k_enc))
        self.decoder = (CNNDecoder(latent_dim, n_classes=k_dec) if decoder == "cnn"
                        else PixelCNNDecoder(latent_dim, n_classes=k_dec, **PIXEL_DECODERS[decoder]))
        self.autoregressive = decoder != "cnn"
        # N(0, 1) initial means lie about sqrt(2 D) = 8 apart for D = 32: separate regions from the start.
        self.prior_means = nn.Parameter(torch.randn(n_classes, latent_dim)) if class_prior else None
        self.learned_prior = None if prior == "normal" else MixturePrior(prior, n_components, latent_dim)

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

    def decode_logits(self, z, y=None, x=None) -> torch.Tensor:
        """Bernoulli logits (B, 1, 28, 28); an autoregressive decoder needs the drawings x it predicts."""
        c = self.one_hot(y) if self.decoder.n_classes else None
        if not self.autoregressive:
            return self.decoder(z, c)
        if x is None:
            raise ValueError("an autoregressive decoder predicts each pixel from the ones before it: give x")
        return self.decoder(z, c, x)

    def decode(self, z, y=None, seed: int = 0) -> torch.Tensor:
        """Drawings (B, 1, 28, 28) of codes z: the factorized decoder's pixel probabilities, or binary drawings
        that the autoregressive decoder draws pixel by pixel from noise seeded with ``seed``."""
        if self.autoregressive:
            return self.decoder.sample(z, self.one_hot(y) if self.decoder.n_classes else None, seed)
        return torch.sigmoid(self.decode_logits(z, y))

    def prior_mean(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """The mean of p(z|y) for each row of z (..., D): zeros, or the learned class means m_y."""
        if self.prior_means is None:
            return torch.zeros_like(z)
        if y is None:
            raise ValueError("a VAE with a class prior needs the class labels y")
        return self.prior_means[y].expand_as(z)

    def log_prior(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """log p(z|y), summed over the latent dimensions: (..., D) -> (...), in nats."""
        if self.learned_prior is not None:
            return self.learned_prior.log_prob(z, self.encoder)
        return log_normal(z, self.prior_mean(z, y), torch.zeros_like(z))

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor, y=None) -> torch.Tensor:
        """log p(x|z, y) of the Bernoulli decoder summed over the pixels, (B,) in nats: minus the binary
        cross-entropy (grey pixels in [0, 1] act as soft targets)."""
        bce = F.binary_cross_entropy_with_logits(self.decode_logits(z, y, x), x, reduction="none")
        return -bce.flatten(1).sum(1)

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, y=None, z=None) -> torch.Tensor:
        """KL(q(z|x) || p(z|y)) per latent dimension, (B, D), in nats, in closed form. A learned prior does not
        factorize: (B, 1), the one-sample estimate log q(z|x) - log p(z) at ``z`` (drawn from q if None)."""
        if self.learned_prior is None:
            return kl_to_normal(mu, logvar, self.prior_mean(mu, y))
        z = self.reparameterize(mu, logvar) if z is None else z
        return (log_normal(z, mu, logvar) - self.log_prior(z)).unsqueeze(1)

    def forward(self, x, y=None):
        mu, logvar = self.encode(x, y)
        z = self.reparameterize(mu, logvar)
        return self.decode_logits(z, y, x), mu, logvar

    @torch.no_grad()
    def sample_prior(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """n codes (n, D) from p(z|y) on the CPU, from noise of ``generator`` (a CPU torch.Generator)."""
        if self.learned_prior is not None:
            return self.learned_prior.sample(n, generator, self.encoder)
        z = torch.randn(n, self.latent_dim, generator=generator)
        if self.prior_means is not None:
            if y is None or len(y) != n:
                raise ValueError("a VAE with a class prior samples the prior of a class: give the class of each "
                                 "of the n codes")
            z = z + self.prior_means.detach().float().cpu()[torch.as_tensor(y).cpu()]
        return z

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """n drawings from the prior, as pixel probabilities (n, 1, 28, 28); y (n,) classes if conditional."""
        device = next(self.parameters()).device
        z = self.sample_prior(n, y, generator).to(device)
        return self.decode(z, None if y is None else y.to(device))


def binarize(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A fixed binarization of grey drawings: each pixel is 1 with probability its intensity, from uniform
    noise of a CPU generator seeded with ``seed`` (the same on every device, and for the same batch the same
    draw every time). Binary drawings come back unchanged."""
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)).to(x.device)
    return (u < x).to(x.dtype)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per latent dimension, (B, D), in nats.
    Closed form from Kingma & Welling (2014), Appendix B: -1/2 (1 + log s^2 - mu^2 - s^2)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def kl_to_normal(mu: torch.Tensor, logvar: torch.Tensor, prior_mu: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(prior_mu, I)) per latent dimension, (B, D), in nats: the closed form
    above with mu - prior_mu in place of mu (a unit-variance prior is a shifted standard normal)."""
    return kl_to_standard_normal(mu - prior_mu, logvar)


def vae_loss(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, beta: float | None = None,
             progress: float = 1.0):
    """Negative ELBO in nats per image: Bernoulli reconstruction (binary cross-entropy summed over the 784
    pixels) + beta * KL to the prior summed over latent dimensions, both averaged over the images. ``beta``
    defaults to the model's own (``VAE.beta``), scaled by min(1, progress / kl_warmup) during a KL warm-up;
    ``progress`` is the fraction of training done (the training loop passes it; held-out losses use 1).
    Kingma & Welling (2014), "Auto-Encoding Variational Bayes", eq. 10 with the KL of Appendix B."""
    beta = getattr(model, "beta", 1.0) if beta is None else beta
    warmup = getattr(model, "kl_warmup", 0.0)
    if warmup:
        beta = beta * min(1.0, progress / warmup)
    if getattr(model, "binarize", False):
        x = torch.bernoulli(x) if model.training else binarize(x)
    mu, logvar = model.encode(x, y)
    z = model.reparameterize(mu, logvar)
    rec = -model.log_likelihood(x, z, y).mean()
    kl = model.kl(mu, logvar, y, z).sum(1).mean()
    return {"loss": rec + beta * kl, "rec": rec, "kl": kl}


def n_params(model: nn.Module) -> int:
    """Number of trainable and frozen parameters."""
    return int(sum(p.numel() for p in model.parameters()))


# ---------------------------------------------------------------------------------------------------
# The model kinds that specs name ({"kind": "vae", "encoder": "gru", ...}): class and loss function.
# A new model is its class above and one line here.
# ---------------------------------------------------------------------------------------------------

MODEL_KINDS = {
    "lstm_ae": (LSTMAutoencoder, ae_loss),
    "cnn_ae": (CNNAutoencoder, ae_loss),
    "vae": (VAE, vae_loss),
    "classifier": (Classifier, classifier_loss),
}
