"""Preference maximisation at paper scale: pairs/second and model FLOPs utilisation. Torch only.

    python bench/engine_gpu.py                  # on a CUDA machine: batch 16 ... 4096 latents, fp32/bf16, eager/compiled
    python bench/engine_gpu.py --smoke          # anywhere (CPU): scaled-down models, tiny batches, a few seconds

Models (defined here so the script needs nothing but torch; randomly initialised, which does not change speed):
- recommender Φ: CNN-F as the official code builds it (TF 'SAME' padding: 224 -> 56 -> 28 -> 14 -> 7, flatten
  7·7·256 -> fc 4096 -> fc 4096 -> fc K=100), input 224x224x3;
- generator / discriminator: the official 64x64 RGB conditional LSGAN (z 256, 6 categories; G: linear 4·4·256 and
  seven 3x3 deconvolutions with BN + lReLU; D: four 5x5 stride-2 convolutions with the category tiled in).
One optimisation of a batch = T Adam steps on z (forward G -> nearest resize to 224 -> Φ, D; backward to z only)
plus one final forward, exactly the engine's loop (fashiongen/generation/engine.py). `batch` counts latents
(pairs x restarts); pairs/s = batch / restarts / seconds. FLOPs are counted with torch's FlopCounterMode on one
step; MFU = achieved FLOP/s / the device's dense peak for the dtype (H100/H200 SXM: bf16 989 TFLOP/s, fp32 67;
pass --peak-tflops to override, e.g. for PCIe cards or TF32).
"""
from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

PEAK_TFLOPS = {"H100": {"bf16": 989.0, "fp32": 67.0}, "H200": {"bf16": 989.0, "fp32": 67.0},
               "A100": {"bf16": 312.0, "fp32": 19.5}}


def same_conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Module:
    """TF 'SAME' convolution (output = ceil(input / stride)) via asymmetric zero padding."""

    class SameConv(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, w = x.shape[-2:]
            ph = max((math.ceil(h / stride) - 1) * stride + kernel - h, 0)
            pw = max((math.ceil(w / stride) - 1) * stride + kernel - w, 0)
            return super().forward(F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)))

    return SameConv(cin, cout, kernel, stride)


class CNNF(nn.Module):
    """CNN-F with the official code's SAME padding; `width` divides every channel count (1 = the paper's)."""

    def __init__(self, k: int = 100, input_size: int = 224, width: int = 1):
        super().__init__()
        c64, c256, fc = 64 // width, 256 // width, 4096 // width
        pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.features = nn.Sequential(same_conv(3, c64, 11, 4), nn.ReLU(), pool,
                                      same_conv(c64, c256, 5, 1), nn.ReLU(), pool,
                                      same_conv(c256, c256, 3, 1), nn.ReLU(), same_conv(c256, c256, 3, 1), nn.ReLU(),
                                      same_conv(c256, c256, 3, 1), nn.ReLU(), pool, nn.Flatten())
        side = math.ceil(math.ceil(math.ceil(math.ceil(input_size / 4) / 2) / 2) / 2)
        self.head = nn.Sequential(nn.Linear(c256 * side * side, fc), nn.ReLU(), nn.Linear(fc, fc), nn.ReLU(),
                                  nn.Linear(fc, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class OfficialG(nn.Module):
    def __init__(self, z_dim: int = 256, n_cat: int = 6, width: int = 1):
        super().__init__()
        c = 256 // width
        self.c = c
        self.fc = nn.Linear(z_dim + n_cat, 4 * 4 * c)
        self.bn0 = nn.BatchNorm2d(c)
        plan = [(c, c, 2), (c, c, 1), (c, c, 2), (c, c, 1), (c, 128 // width, 2), (128 // width, 64 // width, 2)]
        layers: list[nn.Module] = []
        for cin, cout, stride in plan:
            layers += [nn.ConvTranspose2d(cin, cout, 3, stride, padding=1, output_padding=stride - 1),
                       nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers, nn.ConvTranspose2d(64 // width, 3, 3, 1, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, onehot], 1)).view(-1, self.c, 4, 4)
        return self.body(F.leaky_relu(self.bn0(h), 0.2))


class OfficialD(nn.Module):
    def __init__(self, n_cat: int = 6, width: int = 1):
        super().__init__()
        chans = [3, 64 // width, 128 // width, 256 // width, 512 // width]
        self.convs = nn.ModuleList(nn.Conv2d(chans[i] + n_cat, chans[i + 1], 5, 2, padding=2) for i in range(4))
        self.bns = nn.ModuleList([nn.Identity()] + [nn.BatchNorm2d(c) for c in chans[2:]])
        self.fc = nn.Linear(chans[-1] * 4 * 4, 1)

    def forward(self, x: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        for conv, bn in zip(self.convs, self.bns):  # the category is tiled onto the input and h0-h2
            x = torch.cat([x, onehot[:, :, None, None].expand(-1, -1, *x.shape[-2:])], 1)
            x = F.leaky_relu(bn(conv(x)), 0.2)
        return self.fc(x.flatten(1)).squeeze(1)


class Scene:
    """Frozen models, user vectors, and the engine's step: maximise θ·Φ(resize(G(z,c))) − η(D(G(z,c),c) − 1)²."""

    def __init__(self, device: torch.device, width: int, cnn_input: int, z_dim: int, n_users: int = 64,
                 k: int = 100, n_cat: int = 6):
        torch.manual_seed(0)
        self.g, self.d = OfficialG(z_dim, n_cat, width).to(device), OfficialD(n_cat, width).to(device)
        self.phi = CNNF(k, cnn_input, width).to(device)
        for m in (self.g, self.d, self.phi):
            m.eval().requires_grad_(False)
        self.theta = torch.rand(n_users, k, device=device) / 100
        self.device, self.z_dim, self.n_cat, self.cnn_input = device, z_dim, n_cat, cnn_input

    def objective(self, z: torch.Tensor, theta_rows: torch.Tensor, onehot: torch.Tensor, bf16: bool) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            images = self.g(z, onehot)
            phi = self.phi(F.interpolate(images, size=(self.cnn_input, self.cnn_input), mode="nearest"))
            realism = self.d(images, onehot)
        return (theta_rows * phi.float()).sum(1) - (realism.float() - 1.0) ** 2

    def inputs(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(batch)
        z = (torch.randn(batch, self.z_dim, generator=gen) * 0.5).to(self.device)
        users = torch.randint(0, len(self.theta), (batch,), generator=gen).to(self.device)
        cats = torch.randint(0, self.n_cat, (batch,), generator=gen).to(self.device)
        return z, self.theta[users], F.one_hot(cats, self.n_cat).float()


def optimise(objective, z0: torch.Tensor, theta_rows: torch.Tensor, onehot: torch.Tensor, steps: int,
             restarts: int, bf16: bool) -> torch.Tensor:
    """The engine's loop: sum over pairs of the mean over restarts, Adam(0.05) on z, then a final forward."""
    z = z0.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([z], lr=0.05)
    for _ in range(steps):
        loss = -objective(z, theta_rows, onehot, bf16).sum() / restarts
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        return objective(z, theta_rows, onehot, bf16)


def step_flops(scene: Scene, batch: int, bf16: bool) -> float:
    """FLOPs of one optimisation step (forward + backward to z) at `batch` latents."""
    z, theta_rows, onehot = scene.inputs(batch)
    z.requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        scene.objective(z, theta_rows, onehot, bf16).sum().backward()
    return float(counter.get_total_flops())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_tflops(device: torch.device, dtype: str, override: float) -> float:
    if override:
        return override
    if device.type != "cuda":
        return 0.0
    name = torch.cuda.get_device_name(device)
    return next((peaks[dtype] for key, peaks in PEAK_TFLOPS.items() if key in name), 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="scaled-down models and tiny batches (runs on CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", default="", help="comma-separated latent batch sizes (default 16..4096)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--restarts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="timed optimisations per setting (after a warm-up)")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend ('' = skip compile)")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="override the device's dense peak")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.smoke:
        scene = Scene(device, width=16, cnn_input=32, z_dim=16)
        batches = [int(b) for b in (args.batches or "4,8").split(",")]
        steps, restarts, repeats = 2, 4, 1
    else:
        scene = Scene(device, width=1, cnn_input=224, z_dim=256)
        batches = [int(b) for b in (args.batches or "16,64,256,1024,4096").split(",")]
        steps, restarts, repeats = args.steps, args.restarts, args.repeats
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}  torch {torch.__version__}  "
          f"steps {steps}  restarts {restarts}  {'SMOKE (scaled-down models)' if args.smoke else 'paper-scale models'}")
    header = f"{'batch':>6} {'pairs':>6} {'dtype':>5} {'compile':>8} {'s/opt':>8} {'pairs/s':>9} {'GFLOP/step':>11} {'TFLOP/s':>8} {'MFU':>6}"
    print(header)
    print("-" * len(header))
    modes = [(dtype, backend) for dtype in ("fp32", "bf16") for backend in dict.fromkeys(["", args.compile_backend])]
    for dtype, backend in modes:
        bf16 = dtype == "bf16"
        objective = torch.compile(scene.objective, backend=backend) if backend else scene.objective
        for batch in batches:
            inputs = scene.inputs(batch)
            try:
                optimise(objective, *inputs, steps=1, restarts=restarts, bf16=bf16)  # warm-up (and compilation)
                sync(device)
                start = time.perf_counter()
                for _ in range(repeats):
                    optimise(objective, *inputs, steps=steps, restarts=restarts, bf16=bf16)
                sync(device)
            except torch.OutOfMemoryError:
                print(f"{batch:>6} {batch // restarts:>6} {dtype:>5} {backend or 'eager':>8}  out of memory")
                torch.cuda.empty_cache()
                continue
            seconds = (time.perf_counter() - start) / repeats
            flops = step_flops(scene, batch, bf16) * steps  # the final forward is ~1/3 step: left out (conservative)
            achieved = flops / seconds / 1e12
            peak = peak_tflops(device, dtype, args.peak_tflops)
            mfu = f"{100 * achieved / peak:5.1f}%" if peak else "  n/a"
            print(f"{batch:>6} {batch / restarts:>6.0f} {dtype:>5} {backend or 'eager':>8} {seconds:>8.3f} "
                  f"{batch / restarts / seconds:>9.1f} {flops / steps / 1e9:>11.1f} {achieved:>8.2f} {mfu:>6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
