"""The conditional LSGAN networks and their contract face: shapes, range, losses, checkpoint round trip."""
from __future__ import annotations

import pytest
import torch

from fashiongen.models.contract import ConditionalGenerator, load_generator
from fashiongen.models.gan import (ARCHS, ConditionalGAN, Discriminator, GanConfigError, d_loss_fn, ema_update,
                                   g_loss_fn, gan_losses)

CATS = ["a", "b", "c"]


def trained_once(model: ConditionalGAN) -> ConditionalGAN:
    """One training-mode forward so BN running statistics differ from their initial values."""
    model.generator.train()
    model.discriminator.train()
    with torch.no_grad():
        x = model.generator(torch.randn(8, model.latent_dim), torch.eye(len(CATS))[torch.arange(8) % 3])
        model.discriminator(x, torch.eye(len(CATS))[torch.arange(8) % 3])
    return model.eval()


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 16, 16)])
def test_small_outputs_have_the_image_shape_and_range(shape):
    torch.manual_seed(0)
    model = ConditionalGAN("small", 16, CATS, shape).eval()
    z = torch.randn(5, 16) * 3
    x = model.generate(z, torch.tensor([0, 1, 2, 0, 1]))
    assert x.shape == (5, *shape) and x.min() >= -1 and x.max() <= 1
    assert model.discriminate(x, torch.tensor([0, 1, 2, 0, 1])).shape == (5,)


def test_official_architecture_is_the_papers():
    spec = ARCHS["official"]
    assert (spec.z_dim, spec.lr, spec.batch_size, spec.epochs, spec.image_size) == (256, 1e-4, 16, 30, 64)
    model = ConditionalGAN("official", 256, [str(k) for k in range(6)], (3, 64, 64)).eval()
    deconvs = [m for m in model.generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.out_channels, m.stride[0], m.kernel_size[0]) for m in deconvs] == [
        (256, 2, 3), (256, 1, 3), (256, 2, 3), (256, 1, 3), (128, 2, 3), (64, 2, 3), (3, 1, 3)]
    convs = model.discriminator.convs
    assert [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0]) for m in convs] == [
        (3 + 6, 64, 5, 2), (64 + 6, 128, 5, 2), (128 + 6, 256, 5, 2), (256 + 6, 512, 5, 2)]  # one-hot into x, h0-h2
    assert model.discriminator.out.in_features == 4 * 4 * 512
    bns = [m for m in model.generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.momentum == 0.1 and m.eps == 1e-5 for m in bns)
    std = torch.cat([m.weight.flatten() for m in deconvs]).std().item()
    assert std == pytest.approx(0.02, rel=0.05)
    x = model.generate(torch.randn(2, 256), torch.tensor([0, 5]))
    assert x.shape == (2, 3, 64, 64)


def test_the_discriminator_sees_the_category():
    torch.manual_seed(0)
    model = ConditionalGAN("small", 8, CATS, (1, 16, 16)).eval()
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    assert not torch.allclose(model.discriminate(x, torch.zeros(4, dtype=torch.long)),
                              model.discriminate(x, torch.ones(4, dtype=torch.long)))


def test_projection_discriminator_sees_the_category_only_through_its_embedding():
    torch.manual_seed(0)
    model = ConditionalGAN("small", 8, CATS, (1, 16, 16), conditioning="projection").eval()
    assert model.discriminator.convs[0].in_channels == 1  # no tiled one-hot maps
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    zeros, ones = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    with torch.no_grad():
        as_a, as_b = model.discriminate(x, zeros), model.discriminate(x, ones)
        assert not torch.allclose(as_a, as_b)
        weight = model.discriminator.embed.weight  # (features, categories)
        weight[:, [0, 1]] = weight[:, [1, 0]].clone()  # swap the two categories' embeddings: the scores swap
        torch.testing.assert_close(model.discriminate(x, zeros), as_b)
        torch.testing.assert_close(model.discriminate(x, ones), as_a)


@pytest.mark.parametrize("loss, calibrate", [("lsgan", lambda d: d), ("hinge", lambda d: ((d + 1) / 2).clamp(max=1)),
                                             ("nonsaturating", torch.sigmoid)])
def test_realism_is_on_the_lsgan_scale_for_every_loss(loss, calibrate):
    """The design objective's η·(realism − 1)² means the same for every loss: 1 = real, 0 = generated."""
    torch.manual_seed(0)
    model = ConditionalGAN("small", 8, CATS, (1, 16, 16), loss=loss).eval()
    x, c = torch.rand(6, 1, 16, 16) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        raw = model.discriminator(x, torch.eye(3)[c]) * 40  # spread the raw scores over both margins
        model.discriminator.out.weight.mul_(40)
        model.discriminator.out.bias.mul_(40)
        torch.testing.assert_close(model.discriminate(x, c), calibrate(raw))
    d_loss, g_loss, _ = gan_losses(loss)
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    expected = {"lsgan": (0.5 * ((1 + 0.25) / 2 + (4 + 0) / 2), (9 + 1) / 2),
                "hinge": ((0 + 0.5) / 2 + (0 + 1) / 2, 1.0),
                "nonsaturating": (float((torch.nn.functional.softplus(-real).mean()
                                         + torch.nn.functional.softplus(fake).mean())),
                                  float(torch.nn.functional.softplus(-fake).mean()))}[loss]
    assert (d_loss(real, fake).item(), g_loss(fake).item()) == pytest.approx(expected)


def test_checkpoints_written_before_the_recipe_settings_load_as_the_paper():
    torch.manual_seed(0)
    model = ConditionalGAN("small", 8, CATS, (1, 16, 16))
    payload = model.checkpoint_payload()
    payload["config"] = {k: v for k, v in payload["config"].items() if k not in ("conditioning", "loss")}
    old = ConditionalGAN.from_payload(payload)
    assert (old.conditioning, old.loss) == ("concat", "lsgan")
    x, c = torch.rand(2, 1, 16, 16), torch.tensor([0, 2])
    assert torch.equal(old.discriminate(x, c), model.eval().discriminate(x, c))


def test_lsgan_losses_are_the_official_formulas():
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.5, -1.0])
    assert d_loss_fn(real, fake).item() == pytest.approx(0.5 * ((0 + 1) / 2 + (0.25 + 1) / 2))
    assert g_loss_fn(fake).item() == pytest.approx((0.25 + 4) / 2)


def test_checkpoint_round_trip_is_exact(tmp_path):
    torch.manual_seed(1)
    model = trained_once(ConditionalGAN("small", 16, CATS, (1, 16, 16), spectral_norm=True))
    uri = str(tmp_path / "gan.pt")
    version = model.save(uri)
    loaded = load_generator(uri)
    assert isinstance(loaded, ConditionalGenerator) and loaded.model_version == version
    assert (loaded.latent_dim, loaded.categories, loaded.image_shape) == (16, CATS, (1, 16, 16))
    assert not loaded.generator.training and not loaded.discriminator.training
    z, c = torch.randn(6, 16), torch.tensor([0, 1, 2, 2, 1, 0])
    assert torch.equal(loaded.generate(z, c), model.generate(z, c))
    x = model.generate(z, c)
    assert torch.equal(loaded.discriminate(x, c), model.discriminate(x, c))


def test_generate_is_differentiable_in_z():
    model = ConditionalGAN("small", 8, CATS, (1, 16, 16)).eval()
    z = torch.randn(2, 8, requires_grad=True)
    model.discriminate(model.generate(z, torch.tensor([0, 1])), torch.tensor([0, 1])).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_ema_update_moves_towards_the_model_and_copies_buffers():
    torch.manual_seed(2)
    a = ConditionalGAN("small", 8, CATS, (1, 16, 16)).generator
    b = trained_once(ConditionalGAN("small", 8, CATS, (1, 16, 16))).generator
    before = a.fc.weight.clone()
    ema_update(a, b, 0.9)
    assert torch.allclose(a.fc.weight, 0.9 * before + 0.1 * b.fc.weight)
    assert torch.equal(a.fc_bn.running_mean, b.fc_bn.running_mean)


@pytest.mark.parametrize("call, message", [
    (lambda m: m.generate(torch.randn(2, 5), torch.tensor([0, 1])), r"needs \(N, 8\)"),
    (lambda m: m.generate(torch.randn(2, 8), torch.tensor([0, 3])), "category index out of range"),
    (lambda m: m.generate(torch.randn(2, 8), torch.tensor([0])), "one category per row"),
    (lambda m: m.discriminate(torch.zeros(1, 3, 16, 16), torch.tensor([0])), "discriminator needs"),
])
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(GanConfigError, match=message):
        call(ConditionalGAN("small", 8, CATS, (1, 16, 16)))


def test_unsupported_sizes_and_archs_are_rejected():
    with pytest.raises(GanConfigError, match="gan.arch='huge' is unknown"):
        ConditionalGAN("huge", 8, CATS, (1, 16, 16))
    with pytest.raises(GanConfigError, match="not a multiple of 16"):
        ConditionalGAN("official", 8, CATS, (3, 28, 28))
    with pytest.raises(GanConfigError, match="too small"):
        Discriminator(ARCHS["official"], 3, 1, 0)


def test_sample_latents_is_the_plain_prior_at_zero_and_bounded_when_truncated():
    from fashiongen.models.contract import sample_latents

    plain = sample_latents(500, 8, 0.0, torch.Generator().manual_seed(3))
    assert torch.equal(plain, torch.randn(500, 8, generator=torch.Generator().manual_seed(3)))
    truncated = sample_latents(500, 8, 1.0, torch.Generator().manual_seed(3))
    assert truncated.abs().max() <= 1.0 and truncated.std() < plain.std()
    assert torch.equal(truncated[plain.abs() <= 1.0], plain[plain.abs() <= 1.0])  # only the tails are redrawn


def test_the_acgan_head_classifies_from_the_discriminators_features():
    torch.manual_seed(0)
    model = ConditionalGAN("small", 8, CATS, (1, 16, 16), classifier_head=True)
    x, onehot = torch.rand(4, 1, 16, 16), torch.eye(3)[[0, 1, 2, 0]]
    score, logits = model.discriminator(x, onehot, with_logits=True)
    assert score.shape == (4,) and logits.shape == (4, 3)
    assert torch.equal(score, model.discriminator(x, onehot))
    with pytest.raises(GanConfigError, match="gan.aux_classifier"):
        ConditionalGAN("small", 8, CATS, (1, 16, 16)).discriminator(x, onehot, with_logits=True)


def test_conditional_bn_starts_as_the_plain_generator_then_modulates_per_category():
    torch.manual_seed(0)
    plain = ConditionalGAN("small", 8, CATS, (1, 16, 16)).generator.eval()
    torch.manual_seed(0)
    model = ConditionalGAN("small", 8, CATS, (1, 16, 16), conditional_bn=True)
    cbn = model.generator.eval()
    onehot = torch.eye(3)[[0, 1, 2, 0]]
    z = torch.randn(4, 8)
    with torch.no_grad():
        assert torch.equal(cbn(z, onehot), plain(z, onehot))  # zero gains and shifts at init
        cbn.cbn[0].weight[:, 1].fill_(0.5)  # category 1's gain and shift on the first BN
        moved = cbn(z, onehot) != plain(z, onehot)
    assert moved[1].any() and not moved[[0, 2, 3]].any()
