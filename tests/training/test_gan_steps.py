"""The GAN recipe in pure torch: the paper preset's step bit for bit, EMA in `generate`, exact resume, DiffAugment."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fashiongen.config import ConfigError, load_config
from fashiongen.models.gan import GanConfigError, one_hot
from fashiongen.training.gan_steps import (GanStepper, cutout, diff_augment, parse_augment, resolve_settings,
                                           to_model_input, train_in_process, translate)

torch.set_num_threads(1)
PAPER_GOLDEN = Path(__file__).with_name("paper_gan.npz")  # the training step of the code before gan_steps existed
META = {"image": {"mode": "L", "width": 16, "height": 16}, "categories": ["a", "b", "c"]}


def settings(*overrides: str):
    return resolve_settings(load_config(None, ["gan.z_dim=16", "gan.batch_size=16", *overrides]).gan, META)


def test_paper_preset_reproduces_the_training_before_the_recipe_existed():
    """gan.preset=paper: the official LSGAN, concatenated one-hot, no EMA/augmentation: the same losses and the
    same generator bit for bit as the loop of training/gan.py before this change (tests/training/paper_gan.npz)."""
    golden = np.load(PAPER_GOLDEN)
    s = settings("gan.preset=paper", "gan.epochs=2")
    assert (s.loss, s.conditioning, s.augment, s.ema_decay, s.lr_d, s.holdout) == ("lsgan", "concat", (), 0.0,
                                                                                      s.lr, 0.0)
    stepper = GanStepper(s)
    images, cats = torch.from_numpy(golden["images"]), torch.from_numpy(golden["categories"])
    losses = []
    for _ in range(2):
        stepper.train()
        for start in range(0, 64, 16):
            losses.append(stepper.step(to_model_input(images[start:start + 16]), one_hot(cats[start:start + 16], 3)))
    np.testing.assert_array_equal(np.array(losses), golden["losses"])
    model = stepper.sampler()
    z = torch.randn(6, 16, generator=torch.Generator().manual_seed(5))
    c = torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        np.testing.assert_array_equal(model.generate(z, c).numpy(), golden["samples"])
        np.testing.assert_array_equal(model.discriminate(model.generate(z, c), c).numpy(), golden["realism"])


def _data(n: int = 48, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 16, 16, 1), dtype=np.uint8), rng.integers(0, 3, size=n)


def test_generate_uses_the_ema_copy_when_ema_is_on():
    images, cats = _data()
    stepper = train_in_process(settings("gan.epochs=2", "gan.ema_decay=0.9"), images, cats)  # (default 0.999)
    model = stepper.sampler()
    for ema, sampled, live in zip(stepper.ema.parameters(), model.generator.parameters(), stepper.g_net.parameters()):
        assert torch.equal(ema, sampled)
    assert not all(torch.equal(a, b) for a, b in zip(stepper.ema.parameters(), stepper.g_net.parameters()))
    off = train_in_process(settings("gan.epochs=2", "gan.ema_decay=0"), images, cats)
    assert off.ema is None and all(torch.equal(a, b) for a, b in
                                   zip(off.sampler().generator.parameters(), off.g_net.parameters()))


RECIPE = ("gan.loss=hinge", "gan.conditioning=projection", "gan.augment=translation,cutout", "gan.aux_classifier=1",
          "gan.conditional_bn=true",
          "gan.ema_decay=0.99", "gan.lr_d=0.0004")


@pytest.mark.parametrize("recipe", [(), RECIPE])
def test_resume_from_state_gives_the_weights_of_an_uninterrupted_run(recipe):
    images, cats = _data()
    straight = train_in_process(settings("gan.epochs=2", *recipe), images, cats,
                                on_epoch=lambda epoch, stepper, metrics: stepper.sampler())

    first = train_in_process(settings("gan.epochs=1", *recipe), images, cats)
    state = first.state()
    first.sampler()  # what the Ray loop draws a grid with between epochs: it must not move the RNG
    torch.manual_seed(123)  # whatever the process's RNG did in between, the resume restores it
    resumed = GanStepper(settings("gan.epochs=2", *recipe))
    resumed.load_state(state)
    resumed.train()
    order = torch.randperm(48, generator=torch.Generator().manual_seed(0 * 1000 + 1))  # train_in_process's epoch 1
    x_all, y_all = torch.from_numpy(images), torch.as_tensor(cats)
    for start in range(0, 48 - 16 + 1, 16):
        idx = order[start:start + 16]
        resumed.step(to_model_input(x_all[idx]), one_hot(y_all[idx], 3))
    for a, b in zip(straight.state()["generator"].values(), resumed.state()["generator"].values()):
        assert torch.equal(a, b)
    for a, b in zip(straight.state()["discriminator"].values(), resumed.state()["discriminator"].values()):
        assert torch.equal(a, b)
    assert resumed.steps == straight.steps == 6


def test_diff_augment_keeps_shape_is_differentiable_and_changes_images():
    torch.manual_seed(0)
    x = torch.rand(8, 1, 16, 16, requires_grad=True)
    y = diff_augment(x, ("translation", "cutout"))
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert diff_augment(x, ()) is x  # no policy, no change (and no random draw)
    ramp = torch.arange(16.0).expand(4, 1, 16, 16).clone()  # column index as value
    shifted = translate(ramp)
    assert torch.all((shifted - ramp).abs() <= 2)  # shifted by at most 16/8 pixels, edges replicated
    cut = cutout(torch.ones(64, 1, 16, 16))
    zeros = (cut == 0).flatten(1).sum(1)
    assert zeros.max() == 64 and zeros.min() > 0  # an 8x8 square, clipped at the border
    assert parse_augment(" translation, cutout ") == ("translation", "cutout") and parse_augment("") == ()
    with pytest.raises(GanConfigError, match="gan.augment='color'"):
        parse_augment("color")


def test_recipe_settings_are_checked_before_any_work():
    with pytest.raises(ConfigError, match="gan.loss='wasserstein' is not one of lsgan, hinge, nonsaturating"):
        load_config(None, ["gan.loss=wasserstein"])
    with pytest.raises(ConfigError, match="gan.conditioning"):
        load_config(None, ["gan.conditioning=film"])
    with pytest.raises(ConfigError, match="gan.holdout"):
        load_config(None, ["gan.holdout=0.9"])
