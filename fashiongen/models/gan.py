"""Category-conditional GAN (Kang et al. 2017, official `GAN/model.py`: an LSGAN), in PyTorch.

Two architectures share one implementation, chosen by `gan.arch`:

- "official": the paper's 64x64 RGB model. G: concat(z, onehot) -> linear 4x4x256 -> BN -> lReLU(0.2), then six
  3x3 deconvolutions (s2, s1, s2, s1, s2, s2; 256, 256, 256, 256, 128, 64 channels, each BN + lReLU) and a 3x3 s1
  deconvolution to the image channels -> tanh. D: the one-hot category tiled as constant maps and concatenated to
  the input and to h0-h2; four 5x5 stride-2 convolutions (64, 128, 256, 512; BN on all but the first; lReLU 0.2)
  -> flatten -> linear -> 1 (no sigmoid). Init N(0, 0.02), zero biases, BN momentum 0.1 (TF decay 0.9), eps 1e-5.
- "small": the same design scaled for 28x28 grey Fashion-MNIST on CPUs (two stride-2 deconvolutions, three
  4x4 stride-2 convolutions in D).

Beside the paper's design (`conditioning="concat"`, `loss="lsgan"`), two levers of later GAN practice:
- `conditioning="projection"` (Miyato & Koyama 2018): D(x, c) = ψ(φ(x)) + embed(c)·φ(x), φ the flattened last
  convolution; the category enters only through that inner product (no tiled maps).
- `loss="hinge"` (SN-GAN) or `"nonsaturating"` (the original GAN's logistic loss) beside the LSGAN's squares.
- `conditional_bn=True`: G's BatchNorms get a per-category gain and shift (class-conditional BN).
- `classifier_head=True` (AC-GAN, Odena et al. 2017): a linear category head on D's features, trained on real
  images; G is also trained to make it recognise the requested category (`gan.aux_classifier` weighs it).

`discriminate` returns realism on the LSGAN's scale whatever the loss (1 = real, 0 = generated), so the design
objective's penalty η·(realism − 1)² keeps its meaning: LSGAN D as trained; hinge min((D + 1)/2, 1) (its margins
±1 map to 0 and 1, and beyond the real margin there is nothing to gain); non-saturating sigmoid(D), the
probability of "real".

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

    def __init__(self, spec: ArchSpec, z_dim: int, num_categories: int, channels: int, image_size: int,
                 conditional_bn: bool = False):
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
        # Class-conditional BN (as in SN-GAN / BigGAN's G): per-category gain and shift after each body BN, zero at
        # init and made after the others are drawn, so training starts from the plain network.
        self.cbn = nn.ModuleList([nn.Linear(num_categories, 2 * m.num_features, bias=False)
                                  for m in self.body if isinstance(m, nn.BatchNorm2d)]) if conditional_bn else None
        for m in self.cbn or ():
            nn.init.zeros_(m.weight)

    def forward(self, z: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, onehot], dim=1)).view(-1, self.fc_channels, self.base, self.base)
        h = nn.functional.leaky_relu(self.fc_bn(h), LRELU_SLOPE)
        if self.cbn is None:
            return self.body(h)
        modulations = iter(self.cbn)
        for layer in self.body:
            h = layer(h)
            if isinstance(layer, nn.BatchNorm2d):
                gain, shift = next(modulations)(onehot)[:, :, None, None].chunk(2, dim=1)
                h = h * (1 + gain) + shift
        return h


class Discriminator(nn.Module):
    """D(x, onehot(c)) -> (N,) linear realism score; the one-hot is tiled into the input and hidden maps."""

    def __init__(self, spec: ArchSpec, num_categories: int, channels: int, image_size: int,
                 spectral_norm: bool = False, conditioning: str = "concat", classifier_head: bool = False):
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise GanConfigError(f"gan.conditioning={conditioning!r} is unknown: use one of {CONDITIONINGS}")
        wrap = apply_spectral_norm if spectral_norm else (lambda m: m)
        self.projection = conditioning == "projection"
        tiled = 0 if self.projection else num_categories
        convs, norms = [], []
        cin, size = channels, image_size
        for k, cout in enumerate(spec.d_channels):
            convs.append(wrap(nn.Conv2d(cin + tiled, cout, spec.d_kernel, 2, padding=(spec.d_kernel - 1) // 2)))
            norms.append(nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM) if k > 0 else nn.Identity())
            size = (size + 2 * ((spec.d_kernel - 1) // 2) - spec.d_kernel) // 2 + 1
            cin = cout
        if size < 1:
            raise GanConfigError(f"image size {image_size} is too small for the {len(spec.d_channels)} stride-2 "
                                 "convolutions of this discriminator: use a larger gan.image_size or gan.arch=small")
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(norms)
        self.out = wrap(nn.Linear(cin * size * size, 1))
        self.embed = wrap(nn.Linear(num_categories, cin * size * size, bias=False)) if self.projection else None
        self.classify = nn.Linear(cin * size * size, num_categories) if classifier_head else None
        init_weights(self)

    def forward(self, x: torch.Tensor, onehot: torch.Tensor,
                with_logits: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Realism score (N,); with `with_logits` also the category logits (N, K) of the classifier head (AC-GAN),
        through forward so DDP syncs its gradients."""
        maps = onehot[:, :, None, None]
        h = x
        for conv, norm in zip(self.convs, self.norms):
            h = conv(h if self.projection else torch.cat([h, maps.expand(-1, -1, h.shape[2], h.shape[3])], dim=1))
            h = nn.functional.leaky_relu(norm(h), LRELU_SLOPE)
        features = h.flatten(1)
        out = self.out(features).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(onehot) * features).sum(1)
        if with_logits:
            if self.classify is None:
                raise GanConfigError("this discriminator has no classifier head: set gan.aux_classifier > 0")
            return out, self.classify(features)
        return out


def one_hot(c: torch.Tensor, num_categories: int) -> torch.Tensor:
    return nn.functional.one_hot(c.long(), num_categories).float()


def d_loss_fn(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """LSGAN discriminator loss: ½(mean((D(x) − 1)²) + mean(D(G(z))²))."""
    return 0.5 * (((d_real - 1) ** 2).mean() + (d_fake ** 2).mean())


def g_loss_fn(d_fake: torch.Tensor) -> torch.Tensor:
    """LSGAN generator loss: mean((D(G(z)) − 1)²)."""
    return ((d_fake - 1) ** 2).mean()


def hinge_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss: mean(relu(1 − D(x))) + mean(relu(1 + D(G(z))))."""
    return nn.functional.relu(1 - d_real).mean() + nn.functional.relu(1 + d_fake).mean()


def hinge_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss: −mean(D(G(z)))."""
    return -d_fake.mean()


def logistic_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Logistic discriminator loss on logits: mean(softplus(−D(x))) + mean(softplus(D(G(z))))."""
    return nn.functional.softplus(-d_real).mean() + nn.functional.softplus(d_fake).mean()


def nonsaturating_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: mean(softplus(−D(G(z)))) = −mean(log sigmoid(D(G(z))))."""
    return nn.functional.softplus(-d_fake).mean()


def _realism_lsgan(d: torch.Tensor) -> torch.Tensor:
    return d


def _realism_hinge(d: torch.Tensor) -> torch.Tensor:
    return torch.clamp((d + 1) / 2, max=1.0)


LOSSES = {  # name -> (discriminator loss, generator loss, D output -> realism on the LSGAN scale)
    "lsgan": (d_loss_fn, g_loss_fn, _realism_lsgan),
    "hinge": (hinge_d_loss, hinge_g_loss, _realism_hinge),
    "nonsaturating": (logistic_d_loss, nonsaturating_g_loss, torch.sigmoid),
}
CONDITIONINGS = ("concat", "projection")


def gan_losses(name: str):
    """(d_loss(d_real, d_fake), g_loss(d_fake), realism(d)) of `gan.loss`."""
    if name not in LOSSES:
        raise GanConfigError(f"gan.loss={name!r} is unknown: use one of {sorted(LOSSES)}")
    return LOSSES[name]


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·model for parameters; buffers (BN statistics) are copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@register_generator
class ConditionalGAN(ConditionalGenerator):
    """The contract face of a trained G and D (both in eval mode: BN uses its running statistics)."""

    kind = "lsgan"  # the checkpoint tag since the paper's LSGAN; `loss` says which loss trained it

    def __init__(self, arch: str, z_dim: int, categories: list[str], image_shape: tuple[int, int, int],
                 spectral_norm: bool = False, conditioning: str = "concat", loss: str = "lsgan",
                 classifier_head: bool = False, conditional_bn: bool = False):
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
        self.conditioning, self.loss, self.classifier_head = conditioning, loss, bool(classifier_head)
        self.conditional_bn = bool(conditional_bn)
        self._realism = gan_losses(loss)[2]
        self.generator = Generator(spec, z_dim, len(categories), channels, height, self.conditional_bn)
        self.discriminator = Discriminator(spec, len(categories), channels, height, spectral_norm, conditioning,
                                           self.classifier_head)
        self.device = torch.device("cpu")

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, "z_dim": self.latent_dim, "categories": self.categories,
                "image_shape": list(self.image_shape), "spectral_norm": self.spectral_norm,
                "conditioning": self.conditioning, "loss": self.loss, "classifier_head": self.classifier_head,
                "conditional_bn": self.conditional_bn}

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
        """Realism on the LSGAN scale (1 = real, 0 = generated) whatever the training loss (module docstring)."""
        if tuple(x.shape[1:]) != self.image_shape:
            raise GanConfigError(f"images have shape {tuple(x.shape[1:])}, the discriminator needs {self.image_shape}")
        return self._realism(self.discriminator(x, self._onehot(c, x.shape[0])))

    @staticmethod
    def _arguments(config: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments of a `config()`; files written before conditioning and loss existed are the paper's."""
        return {**config, "image_shape": tuple(config["image_shape"]),
                "conditioning": config.get("conditioning", "concat"), "loss": config.get("loss", "lsgan"),
                "classifier_head": config.get("classifier_head", False),
                "conditional_bn": config.get("conditional_bn", False)}

    def to(self, device: torch.device | str) -> "ConditionalGAN":
        self.device = torch.device(device)
        self.generator.to(self.device)
        self.discriminator.to(self.device)
        return self

    def eval(self) -> "ConditionalGAN":
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
    def from_payload(cls, payload: dict[str, Any]) -> "ConditionalGAN":
        model = cls(**cls._arguments(payload["config"]))
        model.generator.load_state_dict(payload["state"]["generator"])
        model.discriminator.load_state_dict(payload["state"]["discriminator"])
        return model.eval()

    @classmethod
    def from_networks(cls, config: dict[str, Any], generator: nn.Module, discriminator: nn.Module) -> "ConditionalGAN":
        """Wrap trained networks (copied, eval mode) built with the same `config()`."""
        model = cls(**cls._arguments(config))
        model.generator.load_state_dict(copy.deepcopy(generator.state_dict()))
        model.discriminator.load_state_dict(copy.deepcopy(discriminator.state_dict()))
        return model.eval()
