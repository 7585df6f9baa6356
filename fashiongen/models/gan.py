"""Category-conditional LSGAN (Kang et al. 2017, official `GAN/model.py`), in PyTorch.

Two architectures share one implementation, chosen by `gan.arch`:

- "official": the paper's 64x64 RGB model. G: concat(z, onehot) -> linear 4x4x256 -> BN -> lReLU(0.2), then six
  3x3 deconvolutions (s2, s1, s2, s1, s2, s2; 256, 256, 256, 256, 128, 64 channels, each BN + lReLU) and a 3x3 s1
  deconvolution to the image channels -> tanh. D: the one-hot category tiled as constant maps and concatenated to
  the input and to h0-h2; four 5x5 stride-2 convolutions (64, 128, 256, 512; BN on all but the first; lReLU 0.2)
  -> flatten -> linear -> 1 (no sigmoid). Init N(0, 0.02), zero biases, BN momentum 0.1 (TF decay 0.9), eps 1e-5.
- "small": the same design scaled for 28x28 grey Fashion-MNIST on CPUs (two stride-2 deconvolutions, three
  4x4 stride-2 convolutions in D).

Image size and channels come from the catalogue, z size and category count from config and catalogue. The
module imports no Ray: the generation engine runs it on machines without Ray.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as apply_spectral_norm

from fashiongen.errors import FashiongenError
from fashiongen.models.contract import ConditionalGenerator, register_generator

LRELU_SLOPE = 0.2
BN_MOMENTUM = 0.1  # TF batch_norm decay 0.9
BN_EPS = 1e-5
INIT_STD = 0.02


class GanConfigError(FashiongenError, ValueError):
    """A GAN setting that does not fit the catalogue (image size, architecture)."""


@dataclass(frozen=True)
class ArchSpec:
    """Layer plan of one architecture plus its training defaults (used when the config leaves them at 0)."""

    g_fc_channels: int
    g_layers: tuple[tuple[int, int], ...]  # (out channels, stride) of each BN + lReLU deconvolution
    g_kernel: int
    d_channels: tuple[int, ...]  # stride-2 convolutions; the category is tiled into all but the last output
    d_kernel: int
    z_dim: int
    lr: float
    batch_size: int
    epochs: int
    image_size: int  # 0 = the catalogue's size

    @property
    def g_upsampling(self) -> int:
        return 2 ** sum(1 for _, stride in self.g_layers if stride == 2)


ARCHS: dict[str, ArchSpec] = {
    "official": ArchSpec(g_fc_channels=256, g_layers=((256, 2), (256, 1), (256, 2), (256, 1), (128, 2), (64, 2)),
                         g_kernel=3, d_channels=(64, 128, 256, 512), d_kernel=5,
                         z_dim=256, lr=1e-4, batch_size=16, epochs=30, image_size=64),
    "small": ArchSpec(g_fc_channels=128, g_layers=((64, 2), (32, 2)), g_kernel=4, d_channels=(32, 64, 128),
                      d_kernel=4, z_dim=64, lr=2e-4, batch_size=64, epochs=3, image_size=0),
}


def arch_spec(name: str) -> ArchSpec:
    if name not in ARCHS:
        raise GanConfigError(f"gan.arch={name!r} is unknown: use one of {sorted(ARCHS)}")
    return ARCHS[name]


def _deconv(cin: int, cout: int, kernel: int, stride: int) -> nn.ConvTranspose2d:
    """A 'SAME' transposed convolution: output = input * stride (TF `conv2d_transpose` semantics)."""
    if stride == 1:
        return nn.ConvTranspose2d(cin, cout, kernel, 1, padding=(kernel - 1) // 2)
    pad = (kernel - 1) // 2
    return nn.ConvTranspose2d(cin, cout, kernel, 2, padding=pad, output_padding=2 + 2 * pad - kernel)


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) weights and zero biases for conv/linear layers; BN scale 1, shift 0 (the official init)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """G(z, onehot(c)) -> (N, C, H, W) in [-1, 1]."""

    def __init__(self, spec: ArchSpec, z_dim: int, num_categories: int, channels: int, image_size: int):
        super().__init__()
        if image_size % spec.g_upsampling:
            raise GanConfigError(f"image size {image_size} is not a multiple of {spec.g_upsampling}, which this "
                                 "generator needs: set gan.image_size to a multiple or pick another gan.arch")
        self.base = image_size // spec.g_upsampling
        self.fc_channels = spec.g_fc_channels
        self.fc = nn.Linear(z_dim + num_categories, spec.g_fc_channels * self.base * self.base)
        self.fc_bn = nn.BatchNorm2d(spec.g_fc_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        layers: list[nn.Module] = []
        cin = spec.g_fc_channels
        for cout, stride in spec.g_layers:
            layers += [_deconv(cin, cout, spec.g_kernel, stride), nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM),
                       nn.LeakyReLU(LRELU_SLOPE)]
            cin = cout
        layers += [_deconv(cin, channels, 3, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, z: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, onehot], dim=1)).view(-1, self.fc_channels, self.base, self.base)
        return self.body(nn.functional.leaky_relu(self.fc_bn(h), LRELU_SLOPE))


class Discriminator(nn.Module):
    """D(x, onehot(c)) -> (N,) linear realism score; the one-hot is tiled into the input and hidden maps."""

    def __init__(self, spec: ArchSpec, num_categories: int, channels: int, image_size: int,
                 spectral_norm: bool = False):
        super().__init__()
        wrap = apply_spectral_norm if spectral_norm else (lambda m: m)
        convs, norms = [], []
        cin, size = channels, image_size
        for k, cout in enumerate(spec.d_channels):
            convs.append(wrap(nn.Conv2d(cin + num_categories, cout, spec.d_kernel, 2, padding=(spec.d_kernel - 1) // 2)))
            norms.append(nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM) if k > 0 else nn.Identity())
            size = (size + 2 * ((spec.d_kernel - 1) // 2) - spec.d_kernel) // 2 + 1
            cin = cout
        if size < 1:
            raise GanConfigError(f"image size {image_size} is too small for the {len(spec.d_channels)} stride-2 "
                                 "convolutions of this discriminator: use a larger gan.image_size or gan.arch=small")
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(norms)
        self.out = wrap(nn.Linear(cin * size * size, 1))
        init_weights(self)

    def forward(self, x: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        maps = onehot[:, :, None, None]
        h = x
        for conv, norm in zip(self.convs, self.norms):
            h = conv(torch.cat([h, maps.expand(-1, -1, h.shape[2], h.shape[3])], dim=1))
            h = nn.functional.leaky_relu(norm(h), LRELU_SLOPE)
        return self.out(h.flatten(1)).squeeze(1)


def one_hot(c: torch.Tensor, num_categories: int) -> torch.Tensor:
    return nn.functional.one_hot(c.long(), num_categories).float()


def d_loss_fn(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """LSGAN discriminator loss: ½(mean((D(x) − 1)²) + mean(D(G(z))²))."""
    return 0.5 * (((d_real - 1) ** 2).mean() + (d_fake ** 2).mean())


def g_loss_fn(d_fake: torch.Tensor) -> torch.Tensor:
    """LSGAN generator loss: mean((D(G(z)) − 1)²)."""
    return ((d_fake - 1) ** 2).mean()


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·model for parameters; buffers (BN statistics) are copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@register_generator
class ConditionalLSGAN(ConditionalGenerator):
    """The contract face of a trained G and D (both in eval mode: BN uses its running statistics)."""

    kind = "lsgan"

    def __init__(self, arch: str, z_dim: int, categories: list[str], image_shape: tuple[int, int, int],
                 spectral_norm: bool = False):
        spec = arch_spec(arch)
        channels, height, width = image_shape
        if height != width:
            raise GanConfigError(f"the GAN needs square images, the catalogue has {width}x{height}: "
                                 "set gan.image_size to resize them")
        self.arch = arch
        self.latent_dim = int(z_dim)
        self.categories = list(categories)
        self.image_shape = (int(channels), int(height), int(width))
        self.spectral_norm = bool(spectral_norm)
        self.generator = Generator(spec, z_dim, len(categories), channels, height)
        self.discriminator = Discriminator(spec, len(categories), channels, height, spectral_norm)
        self.device = torch.device("cpu")

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, "z_dim": self.latent_dim, "categories": self.categories,
                "image_shape": list(self.image_shape), "spectral_norm": self.spectral_norm}

    def _onehot(self, c: torch.Tensor, n: int) -> torch.Tensor:
        c = torch.as_tensor(c, device=self.device).long().reshape(-1)
        if c.numel() != n:
            raise GanConfigError(f"got {c.numel()} categories for {n} inputs: pass one category per row")
        if c.numel() and (c.min() < 0 or c.max() >= len(self.categories)):
            raise GanConfigError(f"category index out of range 0..{len(self.categories) - 1}: {c.tolist()[:8]}")
        return one_hot(c, len(self.categories))

    def generate(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise GanConfigError(f"z has shape {tuple(z.shape)}, the generator needs (N, {self.latent_dim})")
        return self.generator(z, self._onehot(c, z.shape[0]))

    def discriminate(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.image_shape:
            raise GanConfigError(f"images have shape {tuple(x.shape[1:])}, the discriminator needs {self.image_shape}")
        return self.discriminator(x, self._onehot(c, x.shape[0]))

    def to(self, device: torch.device | str) -> "ConditionalLSGAN":
        self.device = torch.device(device)
        self.generator.to(self.device)
        self.discriminator.to(self.device)
        return self

    def eval(self) -> "ConditionalLSGAN":
        self.generator.eval()
        self.discriminator.eval()
        return self

    def freeze(self) -> None:
        self.eval()
        self.generator.requires_grad_(False)
        self.discriminator.requires_grad_(False)

    def checkpoint_payload(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": self.config(),
                "state": {"generator": {k: v.detach().cpu() for k, v in self.generator.state_dict().items()},
                          "discriminator": {k: v.detach().cpu() for k, v in self.discriminator.state_dict().items()}},
                "meta": {}}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "ConditionalLSGAN":
        cfg = payload["config"]
        model = cls(cfg["arch"], cfg["z_dim"], cfg["categories"], tuple(cfg["image_shape"]), cfg["spectral_norm"])
        model.generator.load_state_dict(payload["state"]["generator"])
        model.discriminator.load_state_dict(payload["state"]["discriminator"])
        return model.eval()

    @classmethod
    def from_networks(cls, config: dict[str, Any], generator: nn.Module, discriminator: nn.Module) -> "ConditionalLSGAN":
        """Wrap trained networks (copied, eval mode) built with the same `config()`."""
        model = cls(config["arch"], config["z_dim"], config["categories"], tuple(config["image_shape"]),
                    config["spectral_norm"])
        model.generator.load_state_dict(copy.deepcopy(generator.state_dict()))
        model.discriminator.load_state_dict(copy.deepcopy(discriminator.state_dict()))
        return model.eval()
