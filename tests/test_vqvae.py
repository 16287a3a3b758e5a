"""Known answers of the VQ-VAE's maths (helpers/models/vqvae.py): the quantizer, its codebook updates, the
straight-through gradient, the prior over codes and the two training stages. Small and CPU-only."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

import helpers as H
from helpers.models.vqvae import GRID, VQVAE, CodePrior, VectorQuantizer, vqvae_loss

SMALL = {"n_codes": 16, "code_dim": 8, "channels": 16, "prior_width": 32, "prior_layers": 1}


def test_a_codebook_of_one_code_sends_every_vector_to_it_and_commits_the_squared_distance():
    vq = VectorQuantizer(1, 4).eval()
    z = torch.randn(3, 4, 2, 2)
    quantized, codes, commitment = vq(z)
    e = vq.codebook[0].reshape(1, 4, 1, 1)
    assert codes.tolist() == [[[0, 0], [0, 0]]] * 3
    assert torch.allclose(quantized, e.expand_as(z), atol=1e-6)
    assert torch.allclose(commitment, (z - e).pow(2).flatten(1).sum(1), atol=1e-5)


def test_the_nearest_code_is_the_brute_force_nearest():
    vq = VectorQuantizer(10, 3)
    flat = torch.randn(200, 3)
    brute = torch.stack([((flat[i] - vq.codebook) ** 2).sum(1).argmin() for i in range(len(flat))])
    assert torch.equal(vq.nearest(flat), brute)


def test_quantizing_passes_the_gradient_straight_through():
    vq = VectorQuantizer(5, 3).eval()
    z = torch.randn(2, 3, 2, 2, requires_grad=True)
    w = torch.randn(2, 3, 2, 2)
    (vq(z)[0] * w).sum().backward()
    assert torch.allclose(z.grad, w, atol=1e-6)


def test_the_codebook_moves_to_the_mean_of_its_vectors_and_an_unused_code_is_restarted_on_one():
    vq = VectorQuantizer(2, 2, decay=0.0, eps=1e-9, dead_below=0.5)
    vq.started.fill_(True)
    vq.codebook.copy_(torch.tensor([[0.0, 0.0], [100.0, 100.0]]))
    z = torch.tensor([[1.0, 2.0], [3.0, 4.0], [-1.0, 0.0]]).reshape(3, 2, 1, 1)  # all nearest to code 0
    vq.train()(z)
    # decay 0: the moving averages are this batch's: code 0 the mean of all three, code 1 (unused) restarted.
    assert torch.allclose(vq.codebook[0], torch.tensor([1.0, 2.0]), atol=1e-5)
    assert any(torch.allclose(vq.codebook[1], v, atol=1e-6) for v in z.reshape(3, 2))
    assert vq.count.tolist() == [3.0, 1.0]


def test_a_prior_that_ignores_its_context_gives_every_grid_the_sum_of_its_codes_log_probabilities():
    prior = CodePrior(n_codes=6, n_classes=2, width=16, layers=1, heads=2).eval()
    bias = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0, -0.5])
    with torch.no_grad():
        for p in prior.parameters():
            p.zero_()
        prior.head.bias.copy_(bias)
    codes = torch.randint(0, 6, (4, GRID, GRID))
    log_p = F.log_softmax(bias, 0)
    expected = -log_p[codes.flatten(1)].sum(1)
    assert torch.allclose(prior.nll(codes, torch.tensor([0, 1, 0, 1])), expected, atol=1e-4)
    drawn = prior.sample(400, torch.zeros(400, dtype=torch.long), torch.Generator().manual_seed(0))
    frequency = torch.bincount(drawn.flatten(), minlength=6).float() / drawn.numel()
    assert torch.allclose(frequency, log_p.exp(), atol=0.01)  # 19,600 draws: sd of a frequency <= 0.0036


def test_the_prior_reads_only_the_codes_before_each_position_and_the_class():
    torch.manual_seed(0)
    prior = CodePrior(n_codes=8, n_classes=3, width=16, layers=2, heads=2).eval()
    codes = torch.randint(0, 8, (2, GRID, GRID))
    y = torch.tensor([0, 2])
    t = 20
    changed = codes.clone().flatten(1)
    changed[:, t:] = (changed[:, t:] + 1) % 8
    a, b = prior.logits(codes, y), prior.logits(changed.reshape(2, GRID, GRID), y)
    assert torch.allclose(a[:, :t + 1], b[:, :t + 1], atol=1e-5)  # code t is predicted from codes < t only
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:], atol=1e-3)
    other_class = prior.logits(codes, torch.tensor([1, 1]))
    assert not torch.allclose(a[:, 0], other_class[:, 0], atol=1e-3)


def test_sampling_is_seeded_and_returns_the_requested_grids():
    model = VQVAE(**SMALL).eval()
    y = torch.arange(6) % 5
    a = model.sample_prior(6, y, torch.Generator().manual_seed(1))
    assert a.shape == (6, GRID, GRID) and a.dtype == torch.long and int(a.max()) < SMALL["n_codes"]
    assert torch.equal(a, model.sample_prior(6, y, torch.Generator().manual_seed(1)))
    with torch.no_grad():
        drawings = model.decode(a, y)
    assert drawings.shape == (6, 1, 28, 28) and 0 <= float(drawings.min()) and float(drawings.max()) <= 1
    with pytest.raises(ValueError, match="requested classes"):
        model.sample_prior(6)


def test_each_stage_trains_only_its_own_parts_and_the_prior_stage_leaves_the_codebook():
    torch.manual_seed(0)
    model = VQVAE(**SMALL, autoencoder_fraction=0.5).train()
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 5, (8,))
    parts = vqvae_loss(model, x, y, progress=0.1)
    parts["loss"].backward()
    assert all(p.grad is None for p in model.prior.parameters())
    assert model.encoder[0].weight.grad is not None and model.decoder[0].weight.grad is not None
    assert float(parts["prior_nll"]) == 0 and set(parts) == {"loss", "rec", "commitment", "prior_nll", "perplexity"}
    model.zero_grad(set_to_none=True)
    book = model.quantizer.codebook.clone()
    parts = vqvae_loss(model, x, y, progress=0.5)
    parts["loss"].backward()
    assert all(p.grad is None for p in [*model.encoder.parameters(), *model.decoder.parameters()])
    assert model.prior.head.weight.grad is not None and torch.equal(model.quantizer.codebook, book)
    assert float(parts["loss"]) == pytest.approx(float(parts["prior_nll"]), abs=1e-6)
    # An untrained prior spreads its probability: about ln K nats per code.
    assert float(parts["prior_nll"]) == pytest.approx(GRID * GRID * math.log(SMALL["n_codes"]), rel=0.2)


def test_a_registered_vqvae_trains_through_the_cache_and_reconstructs_through_the_evaluation(synthetic, tmp_path):
    spec = {"kind": "vqvae", **SMALL}
    cfg = H.TrainConfig(steps=6, batch_size=32, lr=1e-3)
    model, record = H.train_or_load("vq", spec, cfg, synthetic, device="cpu", runs_dir=tmp_path, progress=False)
    assert record["steps"] == 6 and set(record["history"]["val"]) >= {"prior_nll", "rec", "perplexity"}
    X = H.to_tensor(synthetic.x_test[:5])
    y = torch.from_numpy(synthetic.y_test[:5])
    recon = H.reconstruct(model, X, y=y)
    assert recon.shape == (5, 1, 28, 28)
    codes = model.encode(X)[0]
    assert torch.allclose(recon, model.decode(codes).float(), atol=1e-6)
