"""The learned priors (helpers.models.priors) and the autoregressive decoder (helpers.models.pixelcnn): known
answers, and the invariants the notebooks rely on (causality of the masked convolutions, a sampler that computes
what the full forward computes, seeded draws, float32 on the device)."""

import math

import numpy as np
import pytest
import torch
from torch import distributions as D

import helpers as H


def binary(n: int, seed: int = 0) -> torch.Tensor:
    return (torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) < 0.2).float()


# ---------------------------------------------------------------------------------------------------
# Learned priors
# ---------------------------------------------------------------------------------------------------


def test_mixture_prior_log_prob_is_that_of_torch_distributions_mixture():
    torch.manual_seed(0)
    prior = H.MixturePrior("mog", 4, 3)
    with torch.no_grad():
        prior.logvars.normal_(0, 0.5)
        prior.weight_logits.normal_(0, 1)
    mix = D.MixtureSameFamily(D.Categorical(logits=prior.weight_logits),
                              D.Independent(D.Normal(prior.means, torch.exp(0.5 * prior.logvars)), 1))
    z = torch.randn(7, 2, 3)
    assert torch.allclose(prior.log_prob(z), mix.log_prob(z), atol=1e-5)


def test_mixture_prior_samples_have_the_mixtures_mean_and_a_seed_gives_the_same_draw():
    prior = H.MixturePrior("mog", 3, 2)
    with torch.no_grad():
        prior.means.copy_(torch.tensor([[-5.0, 0.0], [0.0, 5.0], [5.0, 0.0]]))
        prior.weight_logits.copy_(torch.log(torch.tensor([0.2, 0.3, 0.5])))
    z = prior.sample(20000, generator=torch.Generator().manual_seed(0))
    expected = torch.tensor([0.2 * -5 + 0.5 * 5, 0.3 * 5])
    assert torch.allclose(z.mean(0), expected, atol=0.1)
    assert torch.equal(z, prior.sample(20000, generator=torch.Generator().manual_seed(0)))


def test_vamp_prior_components_are_the_encoders_posteriors_at_the_pseudo_inputs():
    model = H.build_vae(prior="vamp", n_components=5)
    mu, logvar, log_w = model.prior.components()
    mu_e, logvar_e = model.encoder(torch.sigmoid(model.prior.pseudo_logits), None)
    assert torch.equal(mu, mu_e) and torch.equal(logvar, logvar_e)
    assert torch.allclose(log_w.exp().sum(), torch.tensor(1.0), atol=1e-6)
    # The encoder is the VAE's own, held by reference: its weights are saved once, under encoder.*.
    assert not any(k.startswith("prior.encoder") for k in model.state_dict())
    with pytest.raises(ValueError, match="encoder"):
        H.MixturePrior("vamp", 3, 32)


def test_the_kl_estimate_of_a_one_component_standard_prior_averages_to_the_closed_form():
    """A mixture of one N(0, I) is N(0, I): the one-sample estimate log q - log p is unbiased for the closed form."""
    model = H.build_vae(prior="mog", n_components=1)
    with torch.no_grad():
        model.prior.means.zero_()
    mu, logvar = torch.full((20000, 32), 0.5), torch.full((20000, 32), -1.0)
    with torch.no_grad():  # the prior's parameters require grad; only the estimate's value is read
        estimate = model.kl(mu, logvar).mean()
    exact = H.kl_to_standard_normal(mu[:1], logvar[:1]).sum()
    assert float(estimate) == pytest.approx(float(exact), abs=0.1)  # exact: 12.9 nats, estimate's se ~0.03


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_a_learned_prior_trains_and_its_bounds_and_samples_work(prior):
    torch.manual_seed(0)
    model = H.build_vae(prior=prior, n_components=3)
    out = H.vae_loss(model, binary(8))
    out["loss"].backward()
    assert next(model.prior.parameters()).grad is not None  # the prior is trained by the ELBO
    model.eval()
    elbo = H.vae_elbo(model, binary(6))
    assert len(elbo["kl_per_dim"]) == 1 and elbo["latent_dim"] == 32
    assert H.iwae_bound(model, binary(6), k=1) == pytest.approx(elbo["neg_elbo"], abs=1e-3)
    z = H.PriorSampler(model).sample(4, seed=1)
    assert z.shape == (4, 32) and z.dtype == torch.float32


def test_a_learned_prior_is_unconditional_and_named_ones_only():
    with pytest.raises(ValueError, match="unconditional"):
        H.build_vae(prior="vamp", n_components=3, n_classes=5)
    with pytest.raises(ValueError, match="prior must be one of"):
        H.build_vae(prior="flow", n_components=3)
    with pytest.raises(ValueError, match="n_components"):
        H.build_vae(prior="mog", n_components=0)


def test_iwae_bound_under_an_ex_post_mixture_uses_its_density():
    model = H.build_vae().eval()
    X = binary(5)
    codes = np.random.default_rng(0).standard_normal((200, 32))
    mixture = H.MixtureSampler(codes, 1, 0)
    z = torch.randn(3, 4, 32)
    assert torch.allclose(mixture.log_prob(z).double(), torch.from_numpy(
        mixture.gmm.score_samples(z.reshape(-1, 32).double().numpy())).reshape(3, 4), atol=1e-4)
    # A density that is log N(0, I) gives the model's own bound.
    standard = lambda z: H.log_normal(z, torch.zeros_like(z), torch.zeros_like(z))  # noqa: E731
    assert H.iwae_bound(model, X, k=3, log_prior=standard) == pytest.approx(H.iwae_bound(model, X, k=3), abs=1e-4)
    assert H.iwae_bound(model, X, k=3, log_prior=mixture.log_prob) != pytest.approx(H.iwae_bound(model, X, k=3),
                                                                                    abs=1e-2)


# ---------------------------------------------------------------------------------------------------
# The autoregressive decoder
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_a_masked_convolution_sees_only_earlier_pixels(mask_type):
    torch.manual_seed(0)
    conv = H.MaskedConv2d(mask_type, 1, 4, 7)
    x = torch.zeros(1, 1, 28, 28, requires_grad=True)
    conv(x)[0, :, 10, 12].sum().backward()
    seen = x.grad[0, 0] != 0
    order = torch.arange(28 * 28).reshape(28, 28)
    pixel = int(order[10, 12])
    assert not seen[order > pixel].any()  # nothing after the pixel in raster order
    assert bool(seen[10, 12]) == (mask_type == "B")  # type A must not see the pixel it predicts
    assert seen[7:10, 9:16].all() and seen[10, 9:12].all()  # the rows above and the pixels to the left


def test_the_decoder_is_causal_in_raster_order_through_all_its_layers():
    torch.manual_seed(0)
    dec = H.PixelCNNDecoder(8, 0, channels=8, layers=3)
    x = torch.rand(1, 1, 28, 28, requires_grad=True)
    dec(torch.randn(1, 8), None, x)[0, 0, 14, 5].backward()
    order = torch.arange(28 * 28).reshape(28, 28)
    seen = x.grad[0, 0] != 0
    assert not seen[order >= int(order[14, 5])].any()
    assert not seen[: 14 - dec.rows_above].any()  # no further up than the receptive field


@pytest.mark.parametrize("shape", [{}, {"first_kernel": 3, "layers": 2}, {"first_kernel": 5, "layers": 4}])
def test_sampling_pixel_by_pixel_gives_the_logits_of_the_full_forward(shape):
    """Each pixel drawn is the draw the full-image forward of the finished drawing gives at that pixel: the
    sampler's windowed computation is exact, at the image's edges too, for each receptive field."""
    torch.manual_seed(0)
    dec = H.PixelCNNDecoder(32, 0, **shape).eval()
    for p in dec.parameters():
        p.data.normal_(0, 0.3)  # large weights: a wrong crop or padding would change many pixels
    z = torch.randn(5, 32)
    drawn = dec.sample(z, seed=3)
    u = torch.rand((5, 28, 28), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        again = (u < torch.sigmoid(dec(z, None, drawn))[:, 0]).float()
    assert 0.02 < float(drawn.mean()) < 0.98  # not all one colour, so the check below means something
    assert torch.equal(again, drawn[:, 0])


def test_pixel_draws_are_seeded_binary_and_greedy_draws_are_the_most_probable_pixels():
    torch.manual_seed(0)
    model = H.build_vae(decoder="pixelcnn", binarize=True).eval()
    z = torch.randn(3, 32)
    a, b, c = model.decode(z, seed=1), model.decode(z, seed=1), model.decode(z, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(torch.unique(a).tolist()) <= {0.0, 1.0} and a.dtype == torch.float32 and a.shape == (3, 1, 28, 28)
    greedy = model.decoder.sample(z, None, greedy=True)
    with torch.no_grad():
        p = torch.sigmoid(model.decoder(z, None, greedy))
    assert torch.equal(greedy, (p > 0.5).float())


def test_a_pixelcnn_vae_has_a_likelihood_bound_and_its_samples_no_mode_row():
    torch.manual_seed(0)
    model = H.build_vae(decoder="pixelcnn", binarize=True)
    with torch.no_grad():  # a decoder that outputs logit 0 everywhere: every binary drawing costs 784 ln 2
        model.decoder.out.weight.zero_()
        model.decoder.out.bias.zero_()
    model.eval()
    X = binary(4)
    assert H.vae_elbo(model, X)["rec"] == pytest.approx(784 * math.log(2), abs=1e-3)
    clf = H.Classifier().eval()
    m = H.sampler_metrics(clf, model, H.PriorSampler(model), 6, np.random.default_rng(0).standard_normal((20, 128)))
    assert "mode" not in m and m["n"] == 6  # binary drawings are their own mode


def test_an_autoregressive_decoder_needs_the_drawing_it_predicts_and_binary_drawings():
    model = H.build_vae(decoder="pixelcnn", binarize=True)
    with pytest.raises(ValueError, match="give x"):
        model.decode_logits(torch.randn(2, 32))
    with pytest.raises(ValueError, match="binarize=True"):
        H.build_vae(decoder="pixelcnn")


def test_decode_samples_draws_the_pixels_of_each_draw_from_its_own_seed():
    torch.manual_seed(0)
    model = H.build_vae(decoder="pixelcnn", binarize=True).eval()

    class FixedCodes:  # the same codes for every seed: only the pixels' noise differs
        takes_classes, label, name = False, "fixed", "fixed"

        def sample(self, n, classes=None, seed=0):
            return torch.zeros(n, 32)

    a = H.decode_samples(model, FixedCodes(), 4, seed=0)[0]
    b = H.decode_samples(model, FixedCodes(), 4, seed=1000)[0]
    assert not torch.equal(a, b)


def test_the_class_conditional_pixelcnn_vae_samples_its_class_prior():
    torch.manual_seed(0)
    model = H.build_vae(decoder="pixelcnn", binarize=True, n_classes=5, class_input="decoder", class_prior=True).eval()
    classes = torch.tensor([0, 3])
    z = model.sample_prior(2, classes, torch.Generator().manual_seed(0))
    assert torch.allclose(z - model.prior.means.detach()[classes],
                          torch.randn(2, 32, generator=torch.Generator().manual_seed(0)), atol=1e-6)
    drawings, requested = H.decode_samples(model, H.PriorSampler(model), 5, seed=0)
    assert drawings.shape == (5, 1, 28, 28) and requested.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("spec, old_names", [
    ({"n_classes": 5, "class_prior": True, "class_input": "none"}, {"prior.means": "prior_means"}),
    ({"prior": "vamp", "n_components": 3}, {"prior.pseudo_logits": "learned_prior.pseudo_logits"}),
    ({"prior": "mog", "n_components": 2}, {f"prior.{n}": f"learned_prior.{n}" for n in ("means", "logvars",
                                                                                        "weight_logits")}),
])
def test_a_model_cached_before_the_prior_was_a_part_loads(spec, old_names):
    """Checkpoints in a user's runs/ name a class prior's means ``prior_means`` and a learned prior
    ``learned_prior``: they load into the VAE of parts, weight for weight."""
    torch.manual_seed(0)
    trained = H.build_vae(latent_dim=8, **spec)
    old = {old_names.get(k, k): v for k, v in trained.state_dict().items()}
    assert set(old) != set(trained.state_dict())  # the old names, really
    torch.manual_seed(1)
    fresh = H.build_vae(latent_dim=8, **spec)
    fresh.load_state_dict(old)
    for (name, a), b in zip(trained.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name
