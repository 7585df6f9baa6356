"""The conditional LSGAN networks and their contract face: shapes, range, losses, checkpoint round trip."""
from __future__ import annotations

import pytest
import torch

from fashiongen.models.contract import ConditionalGenerator, load_generator
from fashiongen.models.gan import (ARCHS, ConditionalLSGAN, Discriminator, GanConfigError, d_loss_fn, ema_update,
                                   g_loss_fn)

CATS = ["a", "b", "c"]


def trained_once(model: ConditionalLSGAN) -> ConditionalLSGAN:
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
    model = ConditionalLSGAN("small", 16, CATS, shape).eval()
    z = torch.randn(5, 16) * 3
    x = model.generate(z, torch.tensor([0, 1, 2, 0, 1]))
    assert x.shape == (5, *shape) and x.min() >= -1 and x.max() <= 1
    assert model.discriminate(x, torch.tensor([0, 1, 2, 0, 1])).shape == (5,)


def test_official_architecture_is_the_papers():
    spec = ARCHS["official"]
    assert (spec.z_dim, spec.lr, spec.batch_size, spec.epochs, spec.image_size) == (256, 1e-4, 16, 30, 64)
    model = ConditionalLSGAN("official", 256, [str(k) for k in range(6)], (3, 64, 64)).eval()
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
    model = ConditionalLSGAN("small", 8, CATS, (1, 16, 16)).eval()
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    assert not torch.allclose(model.discriminate(x, torch.zeros(4, dtype=torch.long)),
                              model.discriminate(x, torch.ones(4, dtype=torch.long)))


def test_lsgan_losses_are_the_official_formulas():
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.5, -1.0])
    assert d_loss_fn(real, fake).item() == pytest.approx(0.5 * ((0 + 1) / 2 + (0.25 + 1) / 2))
    assert g_loss_fn(fake).item() == pytest.approx((0.25 + 4) / 2)


def test_checkpoint_round_trip_is_exact(tmp_path):
    torch.manual_seed(1)
    model = trained_once(ConditionalLSGAN("small", 16, CATS, (1, 16, 16), spectral_norm=True))
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
    model = ConditionalLSGAN("small", 8, CATS, (1, 16, 16)).eval()
    z = torch.randn(2, 8, requires_grad=True)
    model.discriminate(model.generate(z, torch.tensor([0, 1])), torch.tensor([0, 1])).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_ema_update_moves_towards_the_model_and_copies_buffers():
    torch.manual_seed(2)
    a = ConditionalLSGAN("small", 8, CATS, (1, 16, 16)).generator
    b = trained_once(ConditionalLSGAN("small", 8, CATS, (1, 16, 16))).generator
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
        call(ConditionalLSGAN("small", 8, CATS, (1, 16, 16)))


def test_unsupported_sizes_and_archs_are_rejected():
    with pytest.raises(GanConfigError, match="gan.arch='huge' is unknown"):
        ConditionalLSGAN("huge", 8, CATS, (1, 16, 16))
    with pytest.raises(GanConfigError, match="not a multiple of 16"):
        ConditionalLSGAN("official", 8, CATS, (3, 28, 28))
    with pytest.raises(GanConfigError, match="too small"):
        Discriminator(ARCHS["official"], 3, 1, 0)
