"""A VQ-VAE (van den Oord et al., 2017, "Neural Discrete Representation Learning") with an autoregressive prior
over its grid of codes, conditioned on the class.

The encoder maps a drawing to a 7x7 grid of D-dimensional vectors; each is replaced by the nearest of K learned
codebook vectors (``VectorQuantizer``), so a drawing becomes 49 integers in [0, K); the decoder draws the picture
back from the grid. The codebook follows the encoder's outputs by exponential moving averages (the paper's
Appendix A.1), and codes that no drawing has used for a while are moved onto encoder outputs of the current batch
(as in Dhariwal et al., 2020, "Jukebox"), so that the codebook is used whole. A prior p(codes | class) is then
fitted to the codes of the training drawings: a small causal transformer (``CodePrior``) that reads the grid in
raster order after a class token. Sampling draws the 49 codes one after the other from it and decodes them.

One model, two stages in one run (``vqvae_loss`` by the fraction of training done): the autoencoder first
(reconstruction + commitment), then, with the autoencoder fixed, the prior (the codes' negative log-likelihood).
So the training loop, the model cache and Ctrl-C resume treat it as any other model.

What evaluation calls, as on a VAE (``helpers.models.vae``): ``encode(x, y)`` -> (codes (B, 7, 7) int64, None);
``decode(codes, y, seed)`` -> pixel probabilities (B, 1, 28, 28); ``decode_logits``; ``sample_prior(n, y,
generator)`` -> codes; ``n_classes``, ``latent_dim``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["VectorQuantizer", "CodePrior", "VQVAE", "vqvae_loss"]

GRID = 7  # the codes form a GRID x GRID grid: 28 pixels halved twice


class VectorQuantizer(nn.Module):
    """K codebook vectors of dimension D, learned by exponential moving averages of the encoder outputs assigned to
    each (decay ``decay``, Laplace smoothing ``eps``). ``forward(z)`` for z (B, D, H, W) returns the quantized
    grid with the straight-through gradient (z + (e - z).detach(): the decoder's gradient flows to the encoder
    as if quantizing were the identity), the codes (B, H, W) and the commitment term ||z - sg(e)||^2 summed over
    each drawing's vectors. In training mode the codebook moves towards its assigned vectors, and a code whose
    moving count falls below ``dead_below`` is moved onto a random encoder output of the batch."""

    def __init__(self, n_codes: int, dim: int, decay: float = 0.99, eps: float = 1e-5, dead_below: float = 0.5):
        super().__init__()
        if n_codes < 1 or dim < 1:
            raise ValueError(f"need n_codes >= 1 and dim >= 1, got {n_codes} and {dim}")
        self.n_codes, self.dim, self.decay, self.eps, self.dead_below = n_codes, dim, decay, eps, dead_below
        self.register_buffer("codebook", torch.randn(n_codes, dim))
        self.register_buffer("count", torch.ones(n_codes))  # moving count of vectors assigned to each code
        self.register_buffer("total", torch.randn(n_codes, dim))  # moving sum of those vectors
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """The index (N,) of the codebook vector nearest (L2) to each row of ``flat`` (N, D)."""
        book = self.codebook
        distance = (flat * flat).sum(1, keepdim=True) - 2 * flat @ book.t() + (book * book).sum(1)
        return distance.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """The codebook vectors of codes (B, H, W), as a grid (B, D, H, W)."""
        return self.codebook[codes].permute(0, 3, 1, 2)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        if not bool(self.started):  # start from encoder outputs, not from noise far from them
            pick = torch.randint(len(flat), (self.n_codes,), device=flat.device)
            self.codebook.copy_(flat[pick]), self.total.copy_(flat[pick]), self.count.fill_(1.0)
            self.started.fill_(True)
            return
        one_hot = F.one_hot(codes, self.n_codes).to(flat.dtype)
        self.count.mul_(self.decay).add_(one_hot.sum(0), alpha=1 - self.decay)
        self.total.mul_(self.decay).add_(one_hot.t() @ flat, alpha=1 - self.decay)
        n = self.count.sum()
        smoothed = (self.count + self.eps) / (n + self.n_codes * self.eps) * n
        self.codebook.copy_(self.total / smoothed[:, None])
        dead = self.count < self.dead_below
        if bool(dead.any()):
            pick = torch.randint(len(flat), (int(dead.sum()),), device=flat.device)
            self.codebook[dead] = flat[pick]
            self.total[dead], self.count[dead] = flat[pick], 1.0

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, d, h, w = z.shape
        flat = z.float().permute(0, 2, 3, 1).reshape(-1, d)
        codes = self.nearest(flat)
        if self.training:
            self._update(flat, codes)
            codes = self.nearest(flat)  # against the codebook the decoder will see
        e = self.lookup(codes.reshape(b, h, w)).to(z.dtype)
        commitment = (z - e.detach()).pow(2).flatten(1).sum(1)
        return z + (e - z).detach(), codes.reshape(b, h, w), commitment


class _Residual(nn.Module):
    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(hidden, channels, 1))

    def forward(self, x):
        return x + self.body(x)


class CodePrior(nn.Module):
    """p(codes | class) over a GRID x GRID grid of K codes in raster order: a causal transformer (pre-norm,
    ``layers`` blocks of width ``width``) whose first token is the class (or one learned start token when
    ``n_classes`` is 0); the output at position t gives the logits of code t from the class and codes 0..t-1."""

    def __init__(self, n_codes: int, n_classes: int = 0, width: int = 96, layers: int = 3, heads: int = 4,
                 dropout: float = 0.1):
        super().__init__()
        self.n_codes, self.n_classes, self.length = n_codes, n_classes, GRID * GRID
        self.code_embedding = nn.Embedding(n_codes, width)
        self.start = nn.Embedding(max(n_classes, 1), width)
        self.position = nn.Parameter(torch.zeros(self.length, width))
        nn.init.normal_(self.position, std=0.02)
        block = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_codes)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(self.length), persistent=False)

    def logits(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, K) of codes 0..T-1 given the class and the codes before each; ``codes`` (B, GRID, GRID) or
        (B, T') flat in raster order (only its first T - 1 codes are read, T = T' + 1 up to GRID^2)."""
        flat = codes.flatten(1)
        t = min(flat.shape[1] + 1, self.length)
        start = self.start(y if self.n_classes else torch.zeros(len(flat), dtype=torch.long, device=flat.device))
        tokens = torch.cat([start[:, None], self.code_embedding(flat[:, :t - 1])], dim=1) + self.position[:t]
        return self.head(self.norm(self.blocks(tokens, mask=self.causal[:t, :t], is_causal=True)))

    def nll(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """-log p(codes | y), (B,) nats: the sum over the grid of each code's cross-entropy."""
        flat = codes.flatten(1)
        logits = self.logits(flat, y)
        return F.cross_entropy(logits.transpose(1, 2).float(), flat, reduction="none").sum(1)

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n grids of codes (n, GRID, GRID) int64 on the CPU, each code drawn in raster order from its conditional.
        The draws use ``generator`` (a CPU generator) on the host, so a seed gives the same codes on every device."""
        device = self.head.weight.device
        codes = torch.zeros(n, 0, dtype=torch.long, device=device)
        y = None if y is None else y.to(device)
        for _ in range(self.length):
            logits = self.logits(codes, y)[:, -1].float()
            drawn = torch.multinomial(F.softmax(logits, -1).cpu(), 1, generator=generator)
            codes = torch.cat([codes, drawn.to(device)], dim=1)
        return codes.reshape(n, GRID, GRID).cpu()


class VQVAE(nn.Module):
    """A VQ-VAE of 28x28 drawings with a Bernoulli decoder and a class-conditional ``CodePrior`` (module docstring).
    ``n_codes`` K, ``code_dim`` D, ``channels`` of the convolutions, ``commitment`` the weight of the commitment
    term, ``autoencoder_fraction`` the fraction of training spent on the autoencoder before the prior, and the
    prior's width, number of blocks and dropout."""

    def __init__(self, n_codes: int = 128, code_dim: int = 32, channels: int = 64, n_classes: int = 5,
                 commitment: float = 0.25, autoencoder_fraction: float = 0.4, prior_width: int = 96,
                 prior_layers: int = 3, prior_dropout: float = 0.1):
        super().__init__()
        if not 0 < autoencoder_fraction < 1:
            raise ValueError(f"autoencoder_fraction must be in (0, 1), got {autoencoder_fraction!r}")
        self.n_classes, self.latent_dim, self.n_codes = n_classes, GRID * GRID, n_codes
        self.commitment, self.autoencoder_fraction = float(commitment), float(autoencoder_fraction)
        c = channels
        self.encoder = nn.Sequential(nn.Conv2d(1, c, 4, 2, 1), nn.ReLU(), nn.Conv2d(c, c, 4, 2, 1),
                                     _Residual(c, c // 2), _Residual(c, c // 2), nn.ReLU(), nn.Conv2d(c, code_dim, 1))
        self.quantizer = VectorQuantizer(n_codes, code_dim)
        self.decoder = nn.Sequential(nn.Conv2d(code_dim, c, 3, padding=1), _Residual(c, c // 2),
                                     _Residual(c, c // 2), nn.ReLU(), nn.ConvTranspose2d(c, c, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(c, 1, 4, 2, 1))
        self.prior = CodePrior(n_codes, n_classes, prior_width, prior_layers, dropout=prior_dropout)

    def encode(self, x: torch.Tensor, y=None) -> tuple[torch.Tensor, None]:
        """The codes (B, GRID, GRID) int64 of drawings x; the class plays no part in them."""
        z = self.encoder(x)
        flat = z.float().permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        return self.quantizer.nearest(flat).reshape(len(x), GRID, GRID), None

    def decode_logits(self, codes: torch.Tensor, y=None, x=None) -> torch.Tensor:
        """Bernoulli logits (B, 1, 28, 28) of the drawing of a grid of codes."""
        return self.decoder(self.quantizer.lookup(codes.to(self.quantizer.codebook.device).long()))

    def decode(self, codes: torch.Tensor, y=None, seed: int = 0) -> torch.Tensor:
        """Pixel probabilities (B, 1, 28, 28) of a grid of codes (the decoder's mean; ``seed`` unused)."""
        return torch.sigmoid(self.decode_logits(codes, y))

    def sample_prior(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """n grids of codes from the prior, of the requested classes y (n,) for a conditional model."""
        if self.n_classes and (y is None or len(y) != n):
            raise ValueError("a class-conditional VQ-VAE samples codes of requested classes: give y (n,)")
        return self.prior.sample(n, y, generator)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reconstruction logits, codes, commitment per drawing) of drawings x."""
        quantized, codes, commitment = self.quantizer(self.encoder(x))
        return self.decoder(quantized), codes, commitment


def vqvae_loss(model: VQVAE, x: torch.Tensor, y: torch.Tensor | None = None, progress: float = 1.0) -> dict:
    """The loss of the stage that ``progress`` (the fraction of training done) is in, in nats per drawing.
    Autoencoder stage: the Bernoulli reconstruction term (binary cross-entropy summed over the 784 pixels, grey
    intensities as targets, as the VAEs' decoders) + ``commitment`` x the commitment term. Prior stage (and every
    held-out loss): the codes' negative log-likelihood under the prior, the autoencoder fixed (its parts are
    still reported). Every stage returns the same parts: "rec", "commitment" and "prior_nll" (0 until the prior
    stage), "perplexity" (exp of the entropy of the batch's code usage: how many codes are in use)."""
    if progress < model.autoencoder_fraction:
        logits, codes, commitment = model(x)
        rec = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none").flatten(1).sum(1).mean()
        commitment = commitment.float().mean()
        prior_nll = torch.zeros((), device=x.device)
        loss = rec + model.commitment * commitment
    else:
        with torch.no_grad():
            was_training = model.quantizer.training
            model.quantizer.eval()  # the codebook stays as the autoencoder stage left it
            logits, codes, commitment = model(x)
            model.quantizer.train(was_training)
            rec = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none").flatten(1).sum(1)
            rec, commitment = rec.mean(), commitment.float().mean()
        prior_nll = model.prior.nll(codes, y if model.n_classes else None).mean()
        loss = prior_nll
    usage = torch.bincount(codes.flatten(), minlength=model.n_codes).float()
    p = usage / usage.sum()
    perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
    return {"loss": loss, "rec": rec.detach(), "commitment": commitment.detach(), "prior_nll": prior_nll.detach(),
            "perplexity": perplexity}
