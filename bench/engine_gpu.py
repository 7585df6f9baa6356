"""Preference maximisation at paper scale: pairs/second and model FLOPs utilisation of the project's own engine.

    python bench/engine_gpu.py                  # on a CUDA machine: batch 16 ... 4096 latents, fp32/bf16, eager/compiled
    python bench/engine_gpu.py --smoke          # anywhere (CPU): the small architectures, tiny batches, a few seconds

What is timed is the project's code, randomly initialised (weights do not change speed), built in memory:
- recommender Φ: fashiongen.models.dvbpr.DVBPR with recommender.arch=cnnf, K=100 (CNN-F as the official code builds
  it, fashiongen/models/cnn.py: TF 'SAME' padding, 224 -> 56 -> 28 -> 14 -> 7, fc 4096 -> fc 4096 -> fc K), input
  224x224x3, shaped by DVBPR.build_for a synthetic catalogue (64 users, 4 random RGB images per category)
  and indexed on it (the dataset top-k that the engine reports); user vectors θ ~ U(0, 0.01), DVBPR's own init;
- generator / discriminator: fashiongen.models.gan.ConditionalGAN(arch="official"), the 64x64 RGB conditional LSGAN
  (z 256, 6 categories; G: linear 4·4·256 and seven 3x3 deconvolutions with BN + lReLU; D: four 5x5 stride-2
  convolutions with the category tiled in);
- the loop: fashiongen.generation.engine.PreferenceEngine.optimise, as the generate job calls it: T Adam steps on z
  (G -> nearest resize 64 -> 224 -> Φ, and D; backward to z only), a final forward, the top-k designs and the
  user's best catalogue items. One call optimises `batch` latents (pairs x restarts) in one chunk;
  pairs/s = batch / restarts / seconds.
bf16 is the engine's design.mixed_precision (autocast of the networks); "compiled" is design.compile, with
--compile-backend choosing torch.compile's backend. FLOPs are counted with torch's FlopCounterMode on one step of the
engine's DesignObjective (forward + backward to z, eager); MFU = achieved FLOP/s / the device's dense peak for the
dtype (H100/H200 SXM: bf16 989 TFLOP/s, fp32 67; pass --peak-tflops to override, e.g. for PCIe cards or TF32).

--smoke times the same objects built with the small architectures (DVBPR arch=small, LSGAN arch=small, 32x32 RGB),
compiled with the aot_eager backend unless --compile-backend says otherwise, and also builds the paper-scale scene and
runs one forward of it, so a CPU run checks the paper-scale wiring too.
Needs torch, numpy, pyarrow, pyyaml and pillow only (what fashiongen.models and fashiongen.generation.engine import;
no Ray, s3fs or boto3); it imports fashiongen from this checkout, installed or not.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's fashiongen, installed or not

from fashiongen.config import DesignConfig, RecommenderConfig  # noqa: E402
from fashiongen.generation.engine import DesignObjective, PreferenceEngine  # noqa: E402
from fashiongen.models.dvbpr import DVBPR  # noqa: E402
from fashiongen.models.gan import ConditionalGAN  # noqa: E402

PEAK_TFLOPS = {"H100": {"bf16": 989.0, "fp32": 67.0}, "H200": {"bf16": 989.0, "fp32": 67.0},
               "A100": {"bf16": 312.0, "fp32": 19.5}}
RUN_DATE = "2026-01-01"


@dataclasses.dataclass(frozen=True)
class SceneSpec:
    """Model sizes of one scene: the paper's (cnnf at 224 px, the official 64x64 LSGAN) or the smoke test's."""

    recommender_arch: str
    recommender_size: int  # the recommender's (square, RGB) input; the engine resizes G's images to it
    k: int
    gan_arch: str
    gan_size: int
    z_dim: int
    num_users: int = 64
    num_categories: int = 6
    items_per_category: int = 4


PAPER = SceneSpec("cnnf", 224, 100, "official", 64, 256)
SMOKE = SceneSpec("small", 32, 16, "small", 32, 16, num_users=8, items_per_category=2)


class Scene:
    """The project's DVBPR and ConditionalGAN for a synthetic in-memory catalogue, on `device`."""

    def __init__(self, spec: SceneSpec, device: torch.device):
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        self.spec, self.device = spec, device
        self.categories = [f"category-{c}" for c in range(spec.num_categories)]
        num_items = spec.num_categories * spec.items_per_category
        self.item_category = np.arange(num_items) % spec.num_categories  # catalogue category of each item
        size = spec.recommender_size
        picks = 3  # synthetic interactions per user: the default recommender's profiles are means of them
        catalogue = SimpleNamespace(num_users=spec.num_users, num_items=num_items, categories=self.categories,
                                    item_category=self.item_category,
                                    train_users=np.repeat(np.arange(spec.num_users), picks),
                                    train_items=rng.integers(0, num_items, spec.num_users * picks),
                                    meta={"image": {"mode": "RGB", "width": size, "height": size}})
        self.recommender = DVBPR.from_config(RecommenderConfig(arch=spec.recommender_arch, k=spec.k))
        self.recommender.build_for(catalogue)
        self.recommender.to(device)
        self.recommender.index_catalogue(rng.integers(0, 256, (num_items, size, size, 3), dtype=np.uint8))
        # The generator knows the catalogue's categories in the catalogue's order: item_category indexes both.
        self.generator = ConditionalGAN(spec.gan_arch, spec.z_dim, self.categories,
                                          (3, spec.gan_size, spec.gan_size)).to(device)

    def engine(self, settings: DesignConfig, backend: str) -> PreferenceEngine:
        """The engine at `settings`; with settings.compile its forward is torch.compile'd with `backend` (the engine
        itself compiles with the default backend, inductor)."""
        engine = PreferenceEngine(self.recommender, self.generator, settings, self.item_category, device=self.device)
        if settings.compile and backend != "inductor":
            objective = engine.objective
            objective._forward = torch.compile(objective._forward_eager, backend=backend)
        return engine

    def pairs(self, count: int) -> tuple[list[str], np.ndarray, np.ndarray]:
        """`count` random (user, category) pairs: pair ids (they seed z0) and user and category indices."""
        rng = np.random.default_rng(count)
        users = rng.integers(0, self.spec.num_users, count)
        cats = rng.integers(0, self.spec.num_categories, count)
        return [f"pair-{i}" for i in range(count)], users, cats


def step_flops(scene: Scene, settings: DesignConfig, batch: int) -> float:
    """FLOPs of one optimisation step (the engine's objective forward + backward to z) at `batch` latents."""
    objective = DesignObjective(scene.recommender, scene.generator, dataclasses.replace(settings, compile=False),
                                scene.device)
    gen = torch.Generator().manual_seed(batch)
    z = (torch.randn(batch, objective.latent_dim, generator=gen) * settings.init_std).to(scene.device)
    users = torch.randint(0, scene.spec.num_users, (batch,), generator=gen).to(scene.device)
    cats = torch.randint(0, scene.spec.num_categories, (batch,), generator=gen).to(scene.device)
    z.requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        objective(z, users, cats)[3].sum().backward()
    return float(counter.get_total_flops())


def check_paper_scene(device: torch.device) -> str:
    """Build the paper-scale scene and run its objective on one latent: the wiring the GPU run will time."""
    scene = Scene(dataclasses.replace(PAPER, num_users=2, items_per_category=1), device)
    objective = DesignObjective(scene.recommender, scene.generator, DesignConfig.official(), device)
    z = torch.zeros(1, PAPER.z_dim, device=device)
    with torch.no_grad():
        images, score, realism, value = objective(z, torch.zeros(1, dtype=torch.long, device=device),
                                                  torch.zeros(1, dtype=torch.long, device=device))
        phi = scene.recommender.encode_images(objective.adapt(images))
    assert tuple(images.shape) == (1, 3, PAPER.gan_size, PAPER.gan_size), images.shape
    assert tuple(phi.shape) == (1, PAPER.k) and bool(torch.isfinite(value).all())
    return (f"paper-scale scene builds: DVBPR {PAPER.recommender_arch} {tuple(scene.recommender.image_shape)} "
            f"K={PAPER.k}, LSGAN {PAPER.gan_arch} {scene.generator.image_shape} z={PAPER.z_dim}; one forward OK")


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
    parser.add_argument("--smoke", action="store_true", help="small architectures and tiny batches (runs on CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", default="", help="comma-separated latent batch sizes (default 16..4096)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--restarts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="timed optimisations per setting (after a warm-up)")
    parser.add_argument("--compile-backend", default=None,
                        help="torch.compile backend ('' = skip compile; default inductor, aot_eager with --smoke: "
                             "inductor's C++ compilation alone takes minutes on a CPU)")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="override the device's dense peak")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.smoke:
        spec, default_batches, steps, restarts, repeats = SMOKE, "4,8", 2, 4, 1
    else:
        spec, default_batches, steps, restarts, repeats = PAPER, "16,64,256,1024,4096", args.steps, args.restarts, \
            args.repeats
    batches = [int(b) for b in (args.batches or default_batches).split(",")]
    compile_backend = args.compile_backend if args.compile_backend is not None else \
        ("aot_eager" if args.smoke else "inductor")
    if any(b < restarts or b % restarts for b in batches):
        parser.error(f"--batches counts latents: each must be a multiple of restarts ({restarts})")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}  torch {torch.__version__}  steps {steps}  restarts {restarts}  "
          f"{'SMOKE (small architectures)' if args.smoke else 'paper-scale models'}: DVBPR {spec.recommender_arch} "
          f"{spec.recommender_size}px K={spec.k}, LSGAN {spec.gan_arch} {spec.gan_size}px z={spec.z_dim}")
    if args.smoke:
        print(check_paper_scene(device))
    scene = Scene(spec, device)
    header = f"{'batch':>6} {'pairs':>6} {'dtype':>5} {'compile':>8} {'s/opt':>8} {'pairs/s':>9} {'GFLOP/step':>11} {'TFLOP/s':>8} {'MFU':>6}"
    print(header)
    print("-" * len(header))
    modes = [(dtype, backend) for dtype in ("fp32", "bf16") for backend in dict.fromkeys(["", compile_backend])]
    for dtype, backend in modes:
        bf16 = dtype == "bf16"
        # One engine per mode, as a design actor holds one: every batch is one chunk (batch_pairs = the largest).
        settings = DesignConfig.official(restarts=restarts, steps=steps, batch_pairs=max(batches) // restarts,
                                    mixed_precision=bf16, compile=bool(backend))
        torch._dynamo.reset()  # each mode's compilations start afresh (dynamo caches at most 8 per function)
        engine = scene.engine(settings, backend)
        for batch in batches:
            pairs = batch // restarts
            pair_ids, users, cats = scene.pairs(pairs)
            try:
                engine.optimise(pair_ids, users, cats, RUN_DATE)  # warm-up (and compilation)
                sync(device)
                start = time.perf_counter()
                for _ in range(repeats):
                    engine.optimise(pair_ids, users, cats, RUN_DATE)
                sync(device)
            except torch.OutOfMemoryError:
                print(f"{batch:>6} {pairs:>6} {dtype:>5} {backend or 'eager':>8}  out of memory")
                torch.cuda.empty_cache()
                continue
            seconds = (time.perf_counter() - start) / repeats
            flops = step_flops(scene, settings, batch) * steps  # the final forward (~1/3 step) is left out
            achieved = flops / seconds / 1e12
            peak = peak_tflops(device, dtype, args.peak_tflops)
            mfu = f"{100 * achieved / peak:5.1f}%" if peak else "  n/a"
            print(f"{batch:>6} {pairs:>6} {dtype:>5} {backend or 'eager':>8} {seconds:>8.3f} "
                  f"{pairs / seconds:>9.1f} {flops / steps / 1e9:>11.1f} {achieved:>8.2f} {mfu:>6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
