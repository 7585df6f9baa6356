"""The GAN training recipe in pure torch (no Ray): resolved settings, DiffAugment, the D-then-G step, EMA, state.

    settings = resolve_settings(cfg.gan, catalogue_meta)
    stepper = GanStepper(settings, device, rank=0)   # seeds torch with (seed, rank), then builds G, D, optimisers
    d_loss, g_loss = stepper.step(x, onehot)         # x: (N, C, H, W) in [-1, 1]
    state = stepper.state(); stepper.load_state(state)   # a checkpoint, RNG state included: a resume is exact
    model = stepper.sampler()                        # ConditionalGAN of the EMA copy when EMA is on, else of G

The Ray Train driver (`training/gan.py`) wraps the networks in DDP with `stepper.wrap(prepare_model)`; the
benchmarks train in process with `train_in_process`. With `gan.preset=paper` a step is the official one, bit for
bit the code before this module existed (tests/training/paper_gan.npz).
"""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fashiongen.config import GanConfig
from fashiongen.models.gan import ConditionalGAN, GanConfigError, arch_spec, ema_update, gan_losses, one_hot
from fashiongen.training.ray_train import restore_rng_state, rng_state

AUGMENTS = ("translation", "cutout")
TRANSLATION_RATIO = 0.125  # DiffAugment's defaults (Zhao et al. 2020): shift up to 1/8, cut out a 1/2 square
CUTOUT_RATIO = 0.5
EMA_WARMUP = 10  # decay_t = min(decay, (1 + t) / (10 + t)): early steps do not drag the average back to init


@dataclass(frozen=True)
class GanSettings:
    """Concrete GAN settings, resolved once from the config (0 = the architecture's default) and the catalogue."""

    arch: str
    z_dim: int
    lr: float
    lr_d: float
    beta1: float
    beta2: float
    batch_size: int
    epochs: int
    seed: int
    ema_decay: float
    spectral_norm: bool
    conditioning: str
    loss: str
    aux_classifier: float
    conditional_bn: bool
    augment: tuple[str, ...]
    truncation: float
    holdout: float
    quality_per_category: int
    sample_columns: int
    categories: tuple[str, ...]
    image_shape: tuple[int, int, int]  # (C, H, W) the GAN draws
    source_size: tuple[int, int]  # (W, H) of the catalogue's images
    mode: str  # the catalogue's image mode (L, RGB)

    def model_config(self) -> dict[str, Any]:
        """The `ConditionalGAN` constructor arguments."""
        return {"arch": self.arch, "z_dim": self.z_dim, "categories": list(self.categories),
                "image_shape": tuple(self.image_shape), "spectral_norm": self.spectral_norm,
                "conditioning": self.conditioning, "loss": self.loss, "classifier_head": self.aux_classifier > 0,
                "conditional_bn": self.conditional_bn}

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists, not tuples) for Ray's train_loop_config and checkpoint metadata."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "GanSettings":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def parse_augment(policy: str) -> tuple[str, ...]:
    """"translation,cutout" -> ("translation", "cutout"); "" -> () (no augmentation, the paper's)."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [n for n in names if n not in AUGMENTS]
    if unknown:
        raise GanConfigError(f"gan.augment={policy!r}: {unknown} unknown; use a comma-separated subset of "
                             f"{','.join(AUGMENTS)} or an empty string")
    return names


def resolve_settings(gan: GanConfig, meta: dict) -> GanSettings:
    """Concrete GAN settings: config values, the architecture's defaults where the config says 0, and the
    image shape and categories of the catalogue."""
    spec = arch_spec(gan.arch)
    image = meta["image"]
    channels = 3 if image["mode"] == "RGB" else 1
    size = gan.image_size or spec.image_size or image["height"]
    lr = gan.lr or spec.lr
    gan_losses(gan.loss)  # a one-line error for an unknown loss, before any work
    return GanSettings(
        arch=gan.arch, z_dim=gan.z_dim or spec.z_dim, lr=lr, lr_d=gan.lr_d or lr, beta1=gan.beta1, beta2=gan.beta2,
        batch_size=gan.batch_size or spec.batch_size, epochs=gan.epochs or spec.epochs, seed=gan.seed,
        ema_decay=gan.ema_decay, spectral_norm=gan.spectral_norm, conditioning=gan.conditioning, loss=gan.loss,
        aux_classifier=gan.aux_classifier, conditional_bn=gan.conditional_bn, augment=parse_augment(gan.augment), truncation=gan.truncation,
        holdout=gan.holdout,
        quality_per_category=gan.quality_per_category, sample_columns=gan.sample_columns,
        categories=tuple(meta["categories"]), image_shape=(channels, size, size),
        source_size=(image["width"], image["height"]), mode=image["mode"])


def translate(x: torch.Tensor, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """Shift each image by up to ratio x its size in x and y, edges replicated (differentiable in x)."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device)[None, :, None] + dy).clamp(0, h - 1).expand(n, h, w)
    cols = (torch.arange(w, device=x.device)[None, None, :] + dx).clamp(0, w - 1).expand(n, h, w)
    flat = (rows * w + cols).reshape(n, 1, h * w).expand(-1, x.shape[1], -1)
    return x.reshape(n, x.shape[1], h * w).gather(2, flat).reshape_as(x)


def cutout(x: torch.Tensor, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Zero a random (ratio x size) square of each image (DiffAugment's cutout; 0 is mid-grey in [-1, 1])."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device) - cw // 2
    r = torch.arange(h, device=x.device)[None, :, None]
    c = torch.arange(w, device=x.device)[None, None, :]
    inside = (r >= top) & (r < top + ch) & (c >= left) & (c < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


AUGMENT_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"translation": translate, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """The same random, differentiable augmentations on real and generated images before D (Zhao et al. 2020), so
    D cannot memorise a small catalogue while G still learns the un-augmented distribution."""
    for name in policy:
        x = AUGMENT_FUNCTIONS[name](x)
    return x


class GanStepper:
    """G, D, their Adam optimisers and the optional EMA copy of G, trained one D step then one G step per batch."""

    def __init__(self, settings: GanSettings, device: torch.device | str = "cpu", rank: int = 0):
        self.settings = settings
        self.device = torch.device(device)
        self.rank = rank
        torch.manual_seed(settings.seed * 1000 + rank)
        net = ConditionalGAN(**settings.model_config())
        self.g_net, self.d_net = net.generator.to(self.device), net.discriminator.to(self.device)
        self.G: nn.Module = self.g_net  # what forwards: the networks, or their DDP wrappers after `wrap`
        self.D: nn.Module = self.d_net
        self.ema = copy.deepcopy(self.g_net).eval().requires_grad_(False) if settings.ema_decay > 0 else None
        betas = (settings.beta1, settings.beta2)
        self.opt_g = torch.optim.Adam(self.g_net.parameters(), lr=settings.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.d_net.parameters(), lr=settings.lr_d, betas=betas)
        self.d_loss_fn, self.g_loss_fn, _ = gan_losses(settings.loss)
        self.steps = 0

    def wrap(self, fn: Callable[[nn.Module], nn.Module]) -> None:
        """Forward through fn(G), fn(D) (e.g. Ray Train's `prepare_model`, DDP); state stays the bare networks'."""
        self.G, self.D = fn(self.g_net), fn(self.d_net)

    def train(self) -> None:
        self.G.train()
        self.D.train()

    def step(self, x: torch.Tensor, onehot: torch.Tensor) -> tuple[float, float]:
        """One D step on (x, G(z)), then one G step on the same G(z); returns (d_loss, g_loss). With
        gan.aux_classifier = w > 0 D also learns the real images' categories and G adds w x that head's
        cross-entropy of its images' requested categories."""
        s = self.settings
        z = torch.randn(x.shape[0], s.z_dim, device=x.device)
        fake = self.G(z, onehot)
        target = onehot.argmax(1)
        if s.aux_classifier > 0:
            d_real, logits = self.D(diff_augment(x, s.augment), onehot, with_logits=True)
            aux_d = s.aux_classifier * nn.functional.cross_entropy(logits, target)
        else:
            d_real, aux_d = self.D(diff_augment(x, s.augment), onehot), 0.0
        d_loss = self.d_loss_fn(d_real, self.D(diff_augment(fake.detach(), s.augment), onehot)) + aux_d
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        if s.aux_classifier > 0:
            d_fake, logits = self.D(diff_augment(fake, s.augment), onehot, with_logits=True)
            g_loss = self.g_loss_fn(d_fake) + s.aux_classifier * nn.functional.cross_entropy(logits, target)
        else:
            g_loss = self.g_loss_fn(self.D(diff_augment(fake, s.augment), onehot))
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        if self.ema is not None:
            ema_update(self.ema, self.g_net, min(s.ema_decay, (1 + self.steps) / (EMA_WARMUP + self.steps)))
        self.steps += 1
        return d_loss.item(), g_loss.item()

    def sampler(self) -> ConditionalGAN:
        """A copy in eval mode of what `generate` should use: the EMA copy of G when EMA is on, else G. Building it
        leaves the global RNG alone (its layers' init would draw from it), so a grid between epochs cannot make the
        run differ from its resume."""
        with torch.random.fork_rng(devices=[]):
            return ConditionalGAN.from_networks(self.settings.model_config(), self.ema or self.g_net, self.d_net)

    def rng_state(self) -> torch.Tensor:
        return rng_state(self.device)

    def state(self, rng_states: list[torch.Tensor] | None = None) -> dict[str, Any]:
        """Everything a resume needs; `rng_states` = every rank's RNG state (default: this process's)."""
        return {"generator": self.g_net.state_dict(), "discriminator": self.d_net.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else {}, "steps": self.steps,
                "rng": rng_states if rng_states is not None else [self.rng_state()]}

    def load_state(self, state: dict[str, Any], world_size: int = 1) -> None:
        """Restore `state()`; the RNG continues where this rank's left off when the run had as many ranks (an exact
        resume), else it is seeded from (seed, rank, steps)."""
        self.g_net.load_state_dict(state["generator"])
        self.d_net.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"] or self.g_net.state_dict())
        self.steps = int(state.get("steps", 0))
        restore_rng_state(state.get("rng"), self.rank, world_size, self.device,
                          self.settings.seed * 1000 + self.rank + 7919 * (self.steps + 1))


def to_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [-1, 1], as G draws."""
    return images.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def train_in_process(settings: GanSettings, images: np.ndarray, categories: np.ndarray, *, device: str = "cpu",
                     on_epoch: Callable[[int, GanStepper, dict[str, float]], None] | None = None) -> GanStepper:
    """Train without Ray (the benchmarks, machines without Ray): full batches of a seeded shuffle per epoch.
    `on_epoch(epoch, stepper, {"d_loss", "g_loss", "images"})` runs after each epoch."""
    stepper = GanStepper(settings, device)
    x_all = torch.from_numpy(np.ascontiguousarray(images))
    y_all = torch.as_tensor(np.asarray(categories), dtype=torch.long)
    n, batch = len(x_all), settings.batch_size
    for epoch in range(settings.epochs):
        stepper.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(settings.seed * 1000 + epoch))
        totals = np.zeros(2)
        steps = 0
        for start in range(0, n - batch + 1, batch):
            idx = order[start:start + batch]
            x = to_model_input(x_all[idx].to(device))
            totals += stepper.step(x, one_hot(y_all[idx].to(device), len(settings.categories)))
            steps += 1
        if on_epoch is not None:
            on_epoch(epoch, stepper, {"d_loss": totals[0] / max(steps, 1), "g_loss": totals[1] / max(steps, 1),
                                      "images": steps * batch})
    return stepper
