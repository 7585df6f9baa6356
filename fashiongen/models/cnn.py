"""The image encoders Φ of DVBPR: the paper's CNN-F as the official code builds it, and a small CNN for small images.

- "cnnf": 224x224 input; conv 64x11x11 s4 -> pool -> conv 256x5x5 -> pool -> 3 x conv 256x3x3 -> pool, every conv and
  pool with TF "SAME" padding (224 -> 56 -> 28 -> 14 -> 7), flatten 7*7*256 = 12544 -> fc 4096 -> dropout -> fc 4096
  -> dropout -> fc K (linear). ReLU after every conv and after fc6/fc7; no LRN.
- "small": for 8-64 px catalogues (Fashion-MNIST is 28 px grey): 3 x (conv 3x3 SAME -> ReLU -> 2x2 max-pool, ceil)
  with 32/64/128 channels, flatten -> fc 256 -> dropout -> fc K.

Both: Xavier-uniform weights and zero biases (the official init); no BatchNorm, so Φ of an image does not depend on
the rest of its batch and DDP has no buffers to synchronise. `regularised_weights` lists the conv and fc weights the
official code decays (biases excluded).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from fashiongen.errors import FashiongenError

ARCHS = ("small", "cnnf")
CNNF_SIZE = 224


class ArchitectureError(FashiongenError, ValueError):
    """An encoder architecture that does not exist or does not fit the catalogue's images."""


class SamePad(nn.Module):
    """TF "SAME" padding for a kernel/stride: output size ceil(in / stride), extra padding on the bottom/right."""

    def __init__(self, kernel: int, stride: int):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def _pads(self, size: int) -> tuple[int, int]:
        total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self._pads(x.shape[-2])
        left, right = self._pads(x.shape[-1])
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return x


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [SamePad(kernel, stride), nn.Conv2d(cin, cout, kernel, stride), nn.ReLU(inplace=True)]


def _pool() -> list[nn.Module]:
    return [SamePad(2, 2), nn.MaxPool2d(2, 2)]  # padding with 0 is safe after ReLU (inputs >= 0)


class ImageEncoder(nn.Module):
    """conv body -> flatten -> hidden fc layers with ReLU and dropout -> fc K. Input in [-1, 1], (N, C, H, W)."""

    def __init__(self, body: nn.Sequential, flat_dim: int, hidden: tuple[int, ...], k: int, dropout: float):
        super().__init__()
        self.body = body
        layers: list[nn.Module] = [nn.Flatten()]
        width = flat_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, k))
        self.head = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _out_size(size: int, pools: int) -> int:
    for _ in range(pools):
        size = math.ceil(size / 2)
    return size


def build_encoder(arch: str, in_channels: int, image_size: int, k: int, dropout: float = 0.5) -> ImageEncoder:
    """The encoder for `arch` on square images of `image_size` px with `in_channels` channels, output K dims."""
    if arch == "cnnf":
        if image_size != CNNF_SIZE:
            raise ArchitectureError(f"recommender.arch=cnnf takes {CNNF_SIZE}x{CNNF_SIZE} images, the catalogue has "
                                    f"{image_size}x{image_size}: import with data.image_size={CNNF_SIZE} or use "
                                    "recommender.arch=small")
        body = nn.Sequential(*_conv(in_channels, 64, 11, 4), *_pool(), *_conv(64, 256, 5), *_pool(),
                             *_conv(256, 256, 3), *_conv(256, 256, 3), *_conv(256, 256, 3), *_pool())
        return ImageEncoder(body, 7 * 7 * 256, (4096, 4096), k, dropout)
    if arch == "small":
        if not 4 <= image_size <= 128:
            raise ArchitectureError(f"recommender.arch=small takes 4-128 px images, the catalogue has {image_size} px: "
                                    "set data.image_size to resize on import, or use recommender.arch=cnnf at 224 px")
        body = nn.Sequential(*_conv(in_channels, 32, 3), *_pool(), *_conv(32, 64, 3), *_pool(),
                             *_conv(64, 128, 3), *_pool())
        side = _out_size(image_size, 3)
        return ImageEncoder(body, side * side * 128, (256,), k, dropout)
    raise ArchitectureError(f"recommender.arch={arch!r} is not an encoder architecture: use one of {list(ARCHS)}")


def regularised_weights(encoder: nn.Module) -> list[torch.Tensor]:
    """The conv and fc weight tensors (no biases) that carry the official λ1·½‖W‖² weight decay."""
    return [m.weight for m in encoder.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
