"""An autoregressive decoder under a latent code (PixelVAE, Gulrajani et al., 2017; the "Variational Lossy
Autoencoder" of Chen et al., 2017): p(x|z) = prod_i p(x_i | x_<i, z) over the pixels of a binary drawing in
raster order, by a small PixelCNN (van den Oord et al., 2016, "Pixel Recurrent Neural Networks", sec. 3.4).

A masked convolution of type A (7x7 or 3x3: a pixel sees the rows above it and the pixels to its left), then 3x3
masked convolutions of type B (a position also sees itself), each added to a map computed from z (and the class),
and a 1x1 convolution to the Bernoulli logit of each pixel. Shallow on purpose: a pixel sees only a few rows above
it (``rows_above``), so the shape of a drawing has to come from z (Chen et al., sec. 3: a local decoder leaves the
global structure to the code).

Training is one pass over the real drawing (teacher forcing). Sampling draws the 784 pixels one at a time;
since a pixel depends only on the pixels of its receptive field, each step computes that window alone, each
layer as one matrix product.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .decoders import bernoulli_log_likelihood

__all__ = ["MaskedConv2d", "PixelCNNDecoder"]


class MaskedConv2d(nn.Conv2d):
    """A convolution whose kernel sees only earlier pixels in raster order: type "A" excludes the centre (the
    first layer, which must not see the pixel it predicts), type "B" includes it."""

    def __init__(self, mask_type: str, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        mask = torch.ones_like(self.weight)  # (out, in, k, k)
        centre = kernel_size // 2
        mask[:, :, centre, centre + (mask_type == "B"):] = 0  # the centre row: the pixels to the left
        mask[:, :, centre + 1:] = 0  # no row below
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding)


class PixelCNNDecoder(nn.Module):
    """Bernoulli logits (B, 1, 28, 28) of each pixel given the pixels before it and z: ``forward(z, c, x)``.
    ``sample(z, c, seed)`` (and ``decode``, the decoder interface of ``helpers.models.decoders``) draws binary
    drawings pixel by pixel. With ``n_classes`` > 0 the one-hot class is concatenated to z, as in ``CNNDecoder``.
    ``first_kernel`` 7 with 3 layers sees 5 rows above a pixel; 3 with 2 layers (the "local" decoder) sees 2, so
    that more of a drawing's shape has to come from z."""

    autoregressive = True

    def __init__(self, latent_dim: int = 32, n_classes: int = 0, channels: int = 32, layers: int = 3,
                 first_kernel: int = 7):
        super().__init__()
        if layers < 1 or first_kernel < 3 or first_kernel % 2 == 0:
            raise ValueError(f"need layers >= 1 and an odd first_kernel >= 3, got {layers!r}, {first_kernel!r}")
        self.n_classes, self.channels, self.layers = n_classes, channels, layers
        # The receptive field: first_kernel // 2 rows for the first layer, 1 more per 3x3 layer.
        self.rows_above = first_kernel // 2 + (layers - 1)
        # z (and c) -> one conditioning map of `channels` per masked layer, at full resolution.
        self.cond = nn.Sequential(
            nn.Linear(latent_dim + n_classes, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1), nn.ReLU(),  # (B, 64, 14, 14)
            nn.ConvTranspose2d(64, channels * layers, 4, stride=2, padding=1),  # (B, C * L, 28, 28)
        )
        self.masked = nn.ModuleList([MaskedConv2d("A", 1, channels, first_kernel)] +
                                    [MaskedConv2d("B", channels, channels, 3) for _ in range(layers - 1)])
        self.out = nn.Conv2d(channels, 1, 1)

    def condition(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The conditioning maps (B, C * L, 28, 28) of codes z (B, D) and one-hot classes c."""
        if self.n_classes:
            z = torch.cat([z, c], dim=1)
        return self.cond(z)

    def _net(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Logits of drawings x (B, 1, H, 28) under conditioning maps h (B, C * L, H, 28), any H."""
        a = x
        for conv, h_layer in zip(self.masked, h.chunk(self.layers, dim=1)):
            a = F.relu(conv(a) + h_layer)
        return self.out(a)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, x: torch.Tensor | None = None) -> torch.Tensor:
        if x is None:
            raise ValueError("an autoregressive decoder predicts each pixel from the ones before it: give x")
        return self._net(x, self.condition(z, c))

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return bernoulli_log_likelihood(self(z, c, x), x)

    def decode(self, z: torch.Tensor, c: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        return self.sample(z, c, seed)

    @torch.no_grad()
    def _window_layers(self, dtype: torch.dtype, device: torch.device) -> list:
        """The masked layers restricted to the window that a pixel's logit reads, each as one matrix.

        The logit of pixel (r, col) depends on rows r - R .. r and columns col - R .. col + R of the drawing
        (R = ``rows_above``: the receptive field reaches as far sideways as up). A layer of kernel radius k
        turns a window of n rows and w columns into its last n - k rows (its lower rows are masked out) and middle
        w - 2k columns; being linear, it is the matrix W (C_in n w, C (n - k)(w - 2k)) of its masked kernel, found
        by applying the convolution to the identity. Returns [(W, bias per output, rows n - k, reach (w - 2k - 1)
        / 2, masks)] per layer, where ``masks[r, col]`` is 1 at the outputs inside the image and 0 at those above
        or beside it (the zero padding of the full forward)."""
        n, reach, c_in = self.rows_above + 1, self.rows_above, 1
        layers = []
        for conv in self.masked:
            k, width = conv.kernel_size[0] // 2, 2 * reach + 1
            d_in = c_in * n * width
            identity = torch.eye(d_in, device=device).reshape(d_in, c_in, n, width)
            W = F.conv2d(F.pad(identity, (0, 0, 0, k)), conv.weight * conv.mask).reshape(d_in, -1)
            n, reach, c_in = n - k, reach - k, conv.out_channels
            width = 2 * reach + 1
            row = torch.arange(n, device=device).repeat_interleave(width)  # of each output, in (C, n, w) order
            column = torch.arange(width, device=device).repeat(n)
            image_row = torch.arange(28, device=device)[:, None, None] - (n - 1) + row
            image_col = torch.arange(28, device=device)[None, :, None] - reach + column
            inside = (image_row >= 0) & (image_col >= 0) & (image_col <= 27)  # (28, 28, n w)
            layers.append((W.to(dtype), conv.bias.repeat_interleave(n * width).to(dtype), n, reach,
                           inside.to(dtype).repeat(1, 1, c_in)))
        return layers

    @torch.no_grad()
    def sample(self, z: torch.Tensor, c: torch.Tensor | None = None, seed: int = 0, greedy: bool = False):
        """Binary drawings (B, 1, 28, 28), pixel by pixel in raster order: each pixel is 1 with its predicted
        probability, from uniform noise of a CPU generator seeded with ``seed`` (the same on every device), or,
        with ``greedy``, when that probability exceeds 0.5. Each step computes only the window that the pixel's
        receptive field reaches, one matrix product per layer (``_window_layers``), not the whole image; a test
        holds that this gives the logits of the full forward."""
        R, B = self.rows_above, len(z)
        # R zero rows above the image and R zero columns either side: image pixel (r, col) is (r + R, col + R).
        h = F.pad(self.condition(z, c), (R, R, R, 0))
        maps = h.chunk(self.layers, dim=1)
        x = torch.zeros(B, R + 28, 28 + 2 * R, device=z.device, dtype=h.dtype)
        u = torch.rand((B, 28, 28), generator=torch.Generator().manual_seed(seed)).to(z.device)
        layers = self._window_layers(h.dtype, z.device)
        w_out, b_out = self.out.weight.reshape(1, -1).to(h.dtype), self.out.bias.to(h.dtype)
        for r in range(28):
            for col in range(28):
                a = x[:, r:r + R + 1, col:col + 2 * R + 1].reshape(B, -1)
                for (W, bias, n, reach, inside), h_layer in zip(layers, maps):
                    h_window = h_layer[:, :, r + R + 1 - n:r + R + 1, col + R - reach:col + R + reach + 1]
                    a = torch.addmm(bias, a, W).add_(h_window.reshape(B, -1)).relu_().mul_(inside[r, col])
                p = torch.sigmoid(torch.addmm(b_out, a, w_out.T)[:, 0].float())
                x[:, r + R, col + R] = ((p > 0.5) if greedy else (u[:, r, col] < p)).to(x.dtype)
        return x[:, None, R:, R:R + 28]
