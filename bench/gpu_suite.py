"""GPU suite (#33): throughput and MFU of the design engine, DVBPR, GAN and amortised-designer training on one device,
in one run of at most 8 minutes, written as one Markdown table.

    python3 bench/gpu_suite.py --out $OUT/gpu_suite.md    # a CUDA machine (H200): the paper's models, <= 8 min
    python bench/gpu_suite.py --smoke --threads 1         # any CPU, < 1 min, small models (tests/bench/)

Writes bench/results/gpu_suite-<device>.md (or --out) and prints it. Needs torch, numpy, pyarrow, pyyaml and pillow
only (no Ray); imports fashiongen from this checkout, installed or not. Everything timed is the project's own code,
randomly initialised (weights do not change speed):
1. design engine at paper scale (bench/engine_gpu.py's scene: DVBPR CNN-F at 224 px, K=100; the official 64x64
   LSGAN): PreferenceEngine.optimise with the official search (R=16, T=10, Adam lr 0.05), 128 pairs in one batch, in
   fp32, bf16 and bf16 + torch.compile, against bench/engine.py's official procedure (one pair at a time);
2. DVBPR training: models/dvbpr.py's train_step on 128 BPR triples (256 images) per step, CNN-F at 224 px;
3. GAN training: GanStepper.step (training/gan_steps.py, the default recipe), the official 64x64 RGB network at the
   recipe's batch (16) and at 256, and the small one at 28x28 grey (batch 64); there is no flow model yet;
4. amortised designer: training steps (training/designer_steps.py, 64 pairs x 16 latents through G, Φ and D) and
   inference (the engine's design.mode=amortised on 128 pairs).

Timing: per setting one warm-up call (compilation, cuDNN's choices), one probe call, then as many calls as fit in
--budget seconds (at most --max-calls), between torch.cuda.synchronize calls. fp32 is strict fp32 (TF32 off). MFU =
FLOPs counted by torch's FlopCounterMode (matmuls and convolutions; the engine's from one eager step, as engine_gpu.py
counts them) / seconds / the dense peak (H100/H200: bf16 989, fp32 67 TFLOP/s; --peak-bf16 / --peak-fp32 override).
A setting that raises (a failed compile, out of memory) is recorded with its error and the suite goes on.

At most 8 minutes by construction. The sizes come from FLOP counts: an engine call is 2048 latents x 10 steps x 5.5
GFLOP = 113 TFLOP, a DVBPR step 128 x 9.4 GFLOP = 1.2 TFLOP, an official GAN step 256 x 5.3 GFLOP = 1.3 TFLOP: each
call takes seconds at worst in fp32 (at a third of the 67 TFLOP/s peak), so 14 settings of 10 s plus their
warm-up and probe calls take ~3-4 min. Compilation, the one unbounded cost, runs last, and only while 60 s are left
before --deadline (420 s, counted from the start; a setting not started by then is "skipped (deadline)"); at
--deadline + 40 s a watchdog writes the table as it stands and ends the process (exit 1).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]  # the sibling benches, and this checkout's fashiongen

from engine import official_procedure  # noqa: E402  (bench/engine.py)
from engine_gpu import PAPER, RUN_DATE, SMOKE, Scene, SceneSpec, peak_tflops, step_flops, sync  # noqa: E402
from fashiongen.config import DesignConfig, DesignerConfig, GanConfig, RecommenderConfig  # noqa: E402
from fashiongen.generation.engine import DesignObjective, PreferenceEngine  # noqa: E402
from fashiongen.models.designer import AmortisedDesigner  # noqa: E402
from fashiongen.models.dvbpr import DVBPR, train_step, training_images  # noqa: E402
from fashiongen.models.gan import one_hot  # noqa: E402
from fashiongen.training.designer_steps import designer_epoch  # noqa: E402
from fashiongen.training.gan_steps import GanStepper, resolve_settings  # noqa: E402

HARD_MARGIN_S = 40.0  # the watchdog ends the run this long after --deadline
COMPILE_RESERVE_S = 60.0  # the compiled setting starts only with this long left before --deadline
SAFETY_S = 5.0  # timed calls stop this long before the watchdog
CATEGORIES = 6
DVBPR_USERS, DVBPR_ITEMS = 64, 256  # the synthetic catalogue DVBPR trains on (random images, random triples)
GAN_IMAGES = {"official": ("RGB", 64), "small": ("L", 28)}  # the paper's 64 px RGB; Fashion-MNIST's 28 px grey
ENGINE, RECOMMENDER, GAN, DESIGNER = "design engine", "DVBPR training", "GAN training", "amortised designer"


@dataclasses.dataclass(frozen=True)
class Sizes:
    """What the suite runs: the paper's models on a GPU, or small ones on a CPU (--smoke)."""

    scene: SceneSpec  # the engine's and the designer's recommender and generator (bench/engine_gpu.py)
    restarts: int
    steps: int
    engine_pairs: int  # pairs per engine call, in one batch (x restarts latents); also the designer's inference
    official_pairs: int  # pairs per call of the official procedure (one pair at a time)
    dvbpr_arch: str
    dvbpr_size: int
    dvbpr_triples: int  # BPR triples per training step
    gan_batches: tuple[int, int, int]  # official (the recipe's batch), official (a large batch), small
    designer_pairs: int  # pairs per designer training step
    budget_s: float  # timed seconds per setting
    max_calls: int


FULL = Sizes(PAPER, restarts=16, steps=10, engine_pairs=128, official_pairs=4, dvbpr_arch="cnnf", dvbpr_size=224,
             dvbpr_triples=128, gan_batches=(16, 256, 64), designer_pairs=64, budget_s=10.0, max_calls=1000)
QUICK = Sizes(SMOKE, restarts=4, steps=2, engine_pairs=2, official_pairs=1, dvbpr_arch="small", dvbpr_size=32,
              dvbpr_triples=8, gan_batches=(2, 4, 8), designer_pairs=2, budget_s=0.1, max_calls=2)


@dataclasses.dataclass
class Timed:
    """A setting, built: `call` does `per_call` units of work (`flops` FLOPs) in `dtype` (the peak MFU is against)."""

    call: Callable[[], object]
    per_call: float
    flops: float
    dtype: str
    note: str


@dataclasses.dataclass(frozen=True)
class Setting:
    """One row of the table: how to build what it times, and the unit of its throughput."""

    section: str
    name: str
    unit: str
    build: Callable[[], Timed] | None  # None: nothing to time (the note says why)
    note: str = ""
    baseline: tuple[str, str] | None = None  # (section, name) of the row its throughput is compared with
    last: bool = False  # compiles: runs after every other setting, and only with COMPILE_RESERVE_S left


@dataclasses.dataclass
class Row:
    """A setting's result."""

    throughput: float | None  # None: not measured (the note says why)
    mfu: float | None
    note: str


class Context:
    """Sizes, device and compile backend; the engine's scene is built once, on first use."""

    def __init__(self, sizes: Sizes, device: torch.device, compile_backend: str):
        self.sizes, self.device, self.compile_backend = sizes, device, compile_backend

    @functools.cached_property
    def scene(self) -> Scene:
        return Scene(self.sizes.scene, self.device)


def count_flops(call: Callable[[], object]) -> float:
    """FLOPs of one call (which runs, eagerly)."""
    with FlopCounterMode(display=False) as counter:
        call()
    return float(counter.get_total_flops())


# ---------------------------------------------------------------------------------------------- 1. design engine
def engine_search(ctx: Context, bf16: bool, compiled: bool) -> Timed:
    """PreferenceEngine.optimise on engine_pairs pairs in one batch, as a design actor runs it."""
    scene, s = ctx.scene, ctx.sizes
    settings = DesignConfig.official(restarts=s.restarts, steps=s.steps, batch_pairs=s.engine_pairs,
                                     mixed_precision=bf16, compile=compiled)
    torch._dynamo.reset()  # a compiled setting compiles afresh
    engine = scene.engine(settings, ctx.compile_backend)
    ids, users, cats = scene.pairs(s.engine_pairs)
    note = f"{s.engine_pairs} pairs x {s.restarts} restarts in one batch, {s.steps} Adam steps" + \
        (f"; torch.compile backend {ctx.compile_backend}" if compiled else "")
    return Timed(lambda: engine.optimise(ids, users, cats, RUN_DATE), s.engine_pairs,
                 step_flops(scene, settings, s.engine_pairs * s.restarts) * s.steps, "bf16" if bf16 else "fp32", note)


def official_search(ctx: Context) -> Timed:
    """bench/engine.py's official procedure on the engine's models: one pair at a time, fp32."""
    scene, s, device = ctx.scene, ctx.sizes, ctx.device
    settings = DesignConfig.official(restarts=s.restarts, steps=s.steps)
    objective = DesignObjective(scene.recommender, scene.generator, settings, device)
    g = scene.generator
    # official_procedure draws z and steps Adam on the host: its generator moves z to the device on each call.
    on_device = SimpleNamespace(image_shape=g.image_shape, latent_dim=g.latent_dim, discriminate=g.discriminate,
                                generate=lambda z, c: g.generate(z.to(device), c))
    models = SimpleNamespace(generator=on_device, recommender=objective.recommender, theta=objective.theta)
    _, users, cats = scene.pairs(s.official_pairs)
    return Timed(lambda: official_procedure(models, users, cats, settings), s.official_pairs,
                 step_flops(scene, settings, s.restarts) * s.steps * s.official_pairs, "fp32",
                 f"bench/engine.py's port of PM/main.py: one pair at a time, {s.restarts} restarts, {s.steps} Adam "
                 "steps; z and Adam on the host, the networks on the device")


# ---------------------------------------------------------------------------------------------- 2. DVBPR training
def dvbpr_training(ctx: Context, bf16: bool, channels_last: bool) -> Timed:
    """train_step (one Adam step on a batch of BPR triples) of DVBPR with the recipe's settings."""
    s, device = ctx.sizes, ctx.device
    rec = DVBPR.from_config(RecommenderConfig(arch=s.dvbpr_arch, channels_last=channels_last, mixed_precision=bf16))
    rec.build(DVBPR_USERS, DVBPR_ITEMS, (3, s.dvbpr_size, s.dvbpr_size), CATEGORIES).to(device)
    net = rec.network().train()
    optimizer = torch.optim.Adam(net.parameters(), lr=rec.lr)
    rng = np.random.default_rng(0)
    images = training_images(rng.integers(0, 256, (DVBPR_ITEMS, s.dvbpr_size, s.dvbpr_size, 3), np.uint8), device)
    users, pos, neg = (rng.integers(0, n, s.dvbpr_triples) for n in (DVBPR_USERS, DVBPR_ITEMS, DVBPR_ITEMS))
    step = lambda: train_step(net, optimizer, images, users, pos, neg, rec, device)  # noqa: E731
    bf16 = bf16 and device.type == "cuda"  # train_step autocasts on CUDA only
    note = f"{s.dvbpr_triples} triples ({2 * s.dvbpr_triples} images) per Adam step, {s.dvbpr_arch} at " \
           f"{s.dvbpr_size} px, K={rec.k}" + ("" if bf16 == rec.mixed_precision else "; fp32 here (no CUDA)")
    return Timed(step, 2 * s.dvbpr_triples, count_flops(step), "bf16" if bf16 else "fp32", note)


# ---------------------------------------------------------------------------------------------- 3. GAN training
def gan_training(ctx: Context, arch: str, batch: int) -> Timed:
    """GanStepper.step (a D step, then a G step) with the default recipe, on random images."""
    mode, size = GAN_IMAGES[arch]
    meta = {"image": {"mode": mode, "width": size, "height": size},
            "categories": [f"category-{c}" for c in range(CATEGORIES)]}
    settings = resolve_settings(GanConfig(arch=arch, batch_size=batch), meta)
    stepper = GanStepper(settings, ctx.device)
    stepper.train()
    x = (torch.rand(batch, *settings.image_shape, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(ctx.device)
    onehot = one_hot(torch.arange(batch) % CATEGORIES, CATEGORIES).to(ctx.device)
    step = lambda: stepper.step(x, onehot)  # noqa: E731
    colour = "RGB" if mode == "RGB" else "grey"
    note = f"batch {batch}, {size}x{size} {colour}, z={settings.z_dim}; {settings.loss} loss, " \
           f"{settings.conditioning} D, EMA {settings.ema_decay:g} (the default recipe)"
    return Timed(step, batch, count_flops(step), "fp32", note)


# ---------------------------------------------------------------------------------------------- 4. amortised designer
def new_designer(ctx: Context) -> AmortisedDesigner:
    spec = ctx.sizes.scene
    return AmortisedDesigner(spec.k, spec.num_categories, spec.z_dim, ctx.sizes.restarts, DesignerConfig().hidden)


def designer_training(ctx: Context, bf16: bool) -> Timed:
    """designer_epoch over designer_pairs pairs: one Adam step of the designer through the frozen G, Φ and D."""
    scene, s = ctx.scene, ctx.sizes
    engine = PreferenceEngine(scene.recommender, scene.generator,
                              DesignConfig.official(restarts=s.restarts, mixed_precision=bf16), scene.item_category,
                              device=ctx.device)
    designer = new_designer(ctx).to(ctx.device)
    settings = DesignerConfig(batch_pairs=s.designer_pairs)
    optimiser = torch.optim.Adam(designer.parameters(), lr=settings.lr)
    _, users, cats = scene.pairs(s.designer_pairs)
    order = np.arange(s.designer_pairs)
    step = lambda: designer_epoch(engine, designer, optimiser, users, cats, order, settings)  # noqa: E731
    return Timed(step, 1, count_flops(step), "bf16" if bf16 else "fp32",
                 f"{s.designer_pairs} pairs x {s.restarts} latents per step (the official objective)")


def designer_inference(ctx: Context, bf16: bool) -> Timed:
    """The engine in design.mode=amortised: the designer's latents, one forward pass, the top-k; no search."""
    scene, s = ctx.scene, ctx.sizes
    designer = new_designer(ctx)
    designer.bind(scene.recommender, scene.generator)
    settings = DesignConfig.official(mode="amortised", restarts=s.restarts, batch_pairs=s.engine_pairs,
                                     mixed_precision=bf16)
    engine = PreferenceEngine(scene.recommender, scene.generator, settings, scene.item_category, device=ctx.device,
                              designer=designer)
    ids, users, cats = scene.pairs(s.engine_pairs)
    call = lambda: engine.optimise(ids, users, cats, RUN_DATE)  # noqa: E731
    return Timed(call, s.engine_pairs, count_flops(call), "bf16" if bf16 else "fp32",
                 f"{s.engine_pairs} pairs x {s.restarts} latents in one batch")


def plan(ctx: Context) -> list[Setting]:
    """Every row of the table, in table order."""
    s, bind = ctx.sizes, functools.partial
    official, search_fp32, search_bf16 = (ENGINE, "official procedure"), (ENGINE, "fp32"), (ENGINE, "bf16")
    return [
        Setting(ENGINE, "official procedure", "pairs/s", bind(official_search, ctx)),
        Setting(ENGINE, "fp32", "pairs/s", bind(engine_search, ctx, False, False), baseline=official),
        Setting(ENGINE, "bf16", "pairs/s", bind(engine_search, ctx, True, False), baseline=official),
        Setting(ENGINE, "bf16 + compiled", "pairs/s", bind(engine_search, ctx, True, True), baseline=official,
                last=True),
        Setting(RECOMMENDER, "fp32", "img/s", bind(dvbpr_training, ctx, False, False)),
        Setting(RECOMMENDER, "fp32, channels-last", "img/s", bind(dvbpr_training, ctx, False, True)),
        Setting(RECOMMENDER, "bf16, channels-last", "img/s", bind(dvbpr_training, ctx, True, True)),
        Setting(GAN, "official", "img/s", bind(gan_training, ctx, "official", s.gan_batches[0])),
        Setting(GAN, "official, large batch", "img/s", bind(gan_training, ctx, "official", s.gan_batches[1])),
        Setting(GAN, "small", "img/s", bind(gan_training, ctx, "small", s.gan_batches[2])),
        Setting(GAN, "flow", "img/s", None, note="not built yet: fashiongen has no flow model"),
        Setting(DESIGNER, "training, fp32", "step/s", bind(designer_training, ctx, False)),
        Setting(DESIGNER, "training, bf16", "step/s", bind(designer_training, ctx, True)),
        Setting(DESIGNER, "inference, fp32", "pairs/s", bind(designer_inference, ctx, False), baseline=search_fp32),
        Setting(DESIGNER, "inference, bf16", "pairs/s", bind(designer_inference, ctx, True), baseline=search_bf16),
    ]


# ---------------------------------------------------------------------------------------------- the run
class Suite:
    """Runs the plan against the deadline and writes the table; a watchdog writes it and exits at the hard limit."""

    def __init__(self, settings: list[Setting], device: torch.device, args: argparse.Namespace, sizes: Sizes,
                 out: Path):
        self.start = time.monotonic()
        self.settings, self.device, self.args, self.sizes, self.out = settings, device, args, sizes, out
        self.hard_limit = args.deadline + HARD_MARGIN_S
        self.rows: dict[tuple[str, str], Row] = {}
        self.running: Setting | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def run(self) -> None:
        watchdog = threading.Timer(self.hard_limit - self.elapsed(), self.stop)
        watchdog.daemon = True
        watchdog.start()
        for setting in sorted(self.settings, key=lambda s: s.last):  # stable: table order, compilation last
            self.rows[setting.section, setting.name] = self.measure(setting)
        watchdog.cancel()

    def stop(self) -> None:
        print(f"[{self.elapsed():4.0f} s] hard limit: writing the table and exiting", flush=True)
        self.write()
        os._exit(1)

    def measure(self, setting: Setting) -> Row:
        if setting.build is None:
            return Row(None, None, setting.note)
        if self.elapsed() >= self.args.deadline - (COMPILE_RESERVE_S if setting.last else 0.0):
            return Row(None, None, "skipped (deadline)")
        print(f"[{self.elapsed():4.0f} s] {setting.section}: {setting.name} ...", flush=True)
        self.running = setting
        try:
            timed = setting.build()
            seconds = self.seconds_per_call(timed.call)
        except Exception as error:  # a failed compile, out of memory: recorded, and the suite goes on
            traceback.print_exc()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            message = (str(error).strip().splitlines() or [""])[0][:200]
            return Row(None, None, f"error: {type(error).__name__}: {message}")
        finally:
            self.running = None
        peak = peak_tflops(self.device, timed.dtype, getattr(self.args, f"peak_{timed.dtype}"))
        row = Row(timed.per_call / seconds, timed.flops / seconds / (peak * 1e12) if peak else None, timed.note)
        print(f"[{self.elapsed():4.0f} s] {setting.section}: {setting.name}: {row.throughput:,.1f} {setting.unit}",
              flush=True)
        return row

    def seconds_per_call(self, call: Callable[[], object]) -> float:
        """One warm-up call and one probe call, then as many calls as fit the budget (and end before the watchdog)."""
        call()
        sync(self.device)
        probe = self.average_seconds(call, 1)
        budget = min(self.sizes.budget_s, self.hard_limit - SAFETY_S - self.elapsed())
        calls = min(self.sizes.max_calls, int(budget / probe))
        return self.average_seconds(call, calls) if calls > 0 else probe

    def average_seconds(self, call: Callable[[], object], calls: int) -> float:
        sync(self.device)
        start = time.perf_counter()
        for _ in range(calls):
            call()
        sync(self.device)
        return (time.perf_counter() - start) / calls

    def table(self) -> str:
        rows = dict(self.rows)  # a copy: the watchdog renders while the run may add a row
        lines = ["| section | setting | throughput | unit | MFU | note |", "|---|---|---:|---|---:|---|"]
        for s in self.settings:
            row = rows.get((s.section, s.name)) or Row(None, None, s.note if s.build is None else
                                                       "stopped at the hard limit" if s is self.running else
                                                       "not run (hard limit)")
            baseline = rows.get(s.baseline) if s.baseline else None
            note = row.note
            if row.throughput and baseline and baseline.throughput:
                label = s.baseline[1] if s.baseline[0] == s.section else " ".join(s.baseline)
                note = f"{row.throughput / baseline.throughput:.3g}x {label}; {note}"
            rate = "-" if row.throughput is None else f"{row.throughput:,.1f}"
            mfu = "-" if row.throughput is None else "n/a" if row.mfu is None else f"{100 * row.mfu:.1f}%"
            lines.append(f"| {s.section} | {s.name} | {rate} | {s.unit} | {mfu} | {note.replace('|', '/')} |")
        return "\n".join(lines)

    def report(self) -> str:
        cuda = self.device.type == "cuda"
        name = torch.cuda.get_device_name(self.device) if cuda else "cpu"
        stack = f"torch {torch.__version__}" + \
            (f", CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}" if cuda else "")
        peaks = {d: peak_tflops(self.device, d, getattr(self.args, f"peak_{d}")) for d in ("bf16", "fp32")}
        peak_text = ", ".join(f"{d} {p:g}" for d, p in peaks.items()) + " TFLOP/s" if all(peaks.values()) else \
            "none known for this device: n/a; --peak-bf16, --peak-fp32"
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        mode = "SMOKE: small models, CPU-sized batches" if self.args.smoke else \
            "the paper's models (DVBPR CNN-F 224 px, K=100; the official 64x64 LSGAN)"
        return "\n".join([
            f"# GPU suite: {name}", "",
            f"- {name}, {stack}; {date}; {mode}",
            "- per setting: one warm-up call, one probe, then calls for "
            f"{self.sizes.budget_s:g} s (at most {self.sizes.max_calls}); fp32 is strict fp32 (TF32 off)",
            f"- MFU: FlopCounterMode FLOPs / s / dense peak ({peak_text})",
            f"- run: {self.elapsed():.0f} s (deadline {self.args.deadline:g} s, hard limit {self.hard_limit:g} s)",
            "", self.table(), ""])

    def write(self) -> None:
        text = self.report()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(text)
        print(f"\n{text}\nwritten to {self.out}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small models and batches, on a CPU, in under a minute")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="", help="the Markdown file (default bench/results/gpu_suite-<device>.md)")
    parser.add_argument("--deadline", type=float, default=420.0,
                        help="seconds after which no setting starts; the run ends at most 40 s later")
    parser.add_argument("--compile-backend", default="",
                        help="torch.compile backend (default inductor; aot_eager with --smoke: inductor's C++ "
                             "compilation alone takes minutes on a CPU)")
    parser.add_argument("--peak-bf16", type=float, default=0.0, help="dense bf16 peak in TFLOP/s (default: by device)")
    parser.add_argument("--peak-fp32", type=float, default=0.0, help="dense fp32 peak in TFLOP/s (default: by device)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu" and not args.smoke:
        parser.error("the paper-scale suite needs a CUDA device: pass --smoke to run the small one on a CPU")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    sizes = QUICK if args.smoke else FULL
    ctx = Context(sizes, device, args.compile_backend or ("aot_eager" if args.smoke else "inductor"))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + ("-smoke" if args.smoke else "")
    suite = Suite(plan(ctx), device, args, sizes, Path(args.out or BENCH / "results" / f"gpu_suite-{slug}.md"))
    suite.run()
    suite.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
