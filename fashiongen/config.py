"""One config system for the CLI and the jobs: dataclasses, a YAML file, `key=value` overrides.

    cfg = load_config("configs/default.yaml", ["recommender.epochs=3", "train.num_workers=2"])

Values are applied in order: defaults, the section's `preset` (see PRESETS), the YAML file, then each override.
Every section is a frozen dataclass: a config is resolved once and never mutated (use `dataclasses.replace`).
Unknown keys and values of the wrong type raise `ConfigError` naming the key and what is expected.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fashiongen.errors import FashiongenError


class ConfigError(FashiongenError, ValueError):
    """A config file or override that cannot be applied; the message says which key and why."""


@dataclass(frozen=True)
class DataConfig:
    """Where the catalogue lives and how it is built."""

    catalogue_uri: str = "lake/catalogue"
    source: str = "fashion_mnist"  # fashion_mnist | amazon_npy | folder
    fashion_mnist_dir: str = "/usr/share/datasets/fashion-mnist"
    max_items: int = 0  # 0 = every image of the source
    npy_path: str = ""
    allow_pickle: bool = False  # the paper's .npy is a pickle: load it only when asked
    images_dir: str = ""
    interactions_path: str = ""
    image_size: int = 0  # 0 = keep the source's size; else resize to image_size x image_size
    split_seed: int = 0
    cold_threshold: int = 5  # items with fewer training interactions are "cold"


@dataclass(frozen=True)
class SimulationConfig:
    """Simulated shoppers over an image catalogue with a hidden ground truth (fashiongen/data/oracle.py).
    `preset=linear` restores the earlier linear taste over whole-frame pixel statistics, bit for bit."""

    preset: str = ""  # a named recipe applied before the file's values (see PRESETS); "" = none
    taste: str = "sweet_spot"  # sweet_spot (ideal point over garment attributes) | linear (pixelstats-1)
    num_users: int = 2000
    seed: int = 0
    min_interactions: int = 5
    activity_sigma: float = 0.8  # log-normal spread of interactions per user (heavy tail)
    mean_extra_interactions: float = 7.0
    # Defaults tuned on Fashion-MNIST (sweet spot, demo size): oracle AUC ceiling ~0.88, category affinity alone ~0.77.
    category_concentration: float = 0.6  # Dirichlet alpha over categories (small = picky)
    style_strength: float = 5.0  # weight of the style term (sweet spot; chosen on validation: demo ceiling 0.876)
    popularity_strength: float = 0.5  # Zipf exponent of hidden item popularity
    temperature: float = 2.0  # Gumbel noise scale: higher = noisier choices, lower AUC ceiling


@dataclass(frozen=True)
class RecommenderConfig:
    """Recommender model and its optimisation: the paper's DVBPR network, loss and training; the user side (content
    profiles with a fitted count prior) is the #12 recipe chosen on validation. `preset=paper` restores the paper."""

    preset: str = ""  # a named recipe applied before the file's values (see PRESETS); "" = none
    model: str = "dvbpr"  # a registered recommender: fashiongen.models.contract.RECOMMENDERS
    arch: str = "small"  # small (28-64 px catalogues) | cnnf (the paper's CNN-F at 224 px)
    k: int = 100  # chosen on validation with dropout 0 (#12; the paper's 50 is in the paper preset)
    lr: float = 1e-4
    lambda_cnn: float = 1e-3
    lambda_theta: float = 1.0
    batch_size: int = 128  # per Ray worker; the loss is a sum over the global batch (see training/recommender.py)
    epochs: int = 5
    seed: int = 0
    top_k: int = 3  # export: real items per (user, category)
    dropout: float = 0.0  # on the CNN's hidden fc layers while training (the paper's keep_prob 0.5 is in its preset)
    negatives_same_category: float = 0.0  # share of BPR negatives drawn from the positive's category (paper: 0)
    item_bias: bool = False  # DVBPR: a learned β_i to rank real items (the designs climb θ·Φ alone; paper: none)
    lambda_bias: float = 1.0  # L2 on the β rows of the batch
    count_prior: bool = False  # DVBPR training: a learned prior of category share and item count in the BPR score
    user_model: str = "ideal_point"  # DVBPR θ_u: profile (mean standardised Φ of u's items + a fitted count prior) |
    # ideal_point (the profile minus a fitted curvature q·z²: each shopper's score has a maximum; validation: AUC .750
    # vs .742, taste within .52 vs .37, designs outside the real range 15% vs 42%, bench/README) | learned (the paper)
    channels_last: bool = True  # DVBPR training: channels-last CNN memory format (1.4x on 2 CPU cores, same AUC)
    mixed_precision: bool = False  # DVBPR training on CUDA: bf16 autocast of the networks (loss in fp32)
    model_uri: str = ""  # where training writes the model; empty = <lake_uri>/models/recommender/<model>.pt
    eval_users: int = 500  # users in the per-epoch sampled-100 validation AUC (0 = all)
    # Baselines (BPR-MF, VBPR): in-process Adam on the batch-mean BPR loss with L2 on the batch's rows.
    baseline_epochs: int = 20
    baseline_lr: float = 0.01
    baseline_reg: float = 0.1  # chosen on validation AUC of BPR-MF (1e-2: 0.571, 0.1: 0.610, 1: 0.608)
    classifier_epochs: int = 2  # VBPR's visual features: the category classifier's training epochs


@dataclass(frozen=True)
class GanConfig:
    """Category-conditional GAN. 0 = the architecture's default (official: z 256, lr 1e-4, batch 16, 30 epochs,
    64 px; small: z 64, lr 2e-4, batch 64, 3 epochs, the catalogue's size). The defaults are the recipe chosen on
    validation images (bench/gan_recipes.py, #13): hinge loss, a projection discriminator and an EMA copy of G;
    `gan.preset=paper` is the paper's LSGAN (with `gan.arch=official`, its network too)."""

    preset: str = ""  # a named recipe applied before the file's values (see PRESETS); "" = none
    arch: str = "small"  # small (Fashion-MNIST) | official (64x64 RGB, the paper's)
    z_dim: int = 0
    lr: float = 0.0
    beta1: float = 0.5
    beta2: float = 0.99
    batch_size: int = 0  # per Ray worker (DDP averages gradients over workers)
    epochs: int = 0
    image_size: int = 0  # 0 = the architecture's size (official 64), else the catalogue's; images are resized
    seed: int = 0
    lr_d: float = 0.0  # D's learning rate; 0 = gan.lr (the paper's); else two time-scales
    ema_decay: float = 0.999  # 0 = off (the paper's setting); else an EMA copy of G is the saved generator
    spectral_norm: bool = False  # spectral normalisation of D's layers (off in the paper)
    conditioning: str = "projection"  # concat: one-hot tiled into D's maps (the paper's) | projection (Miyato & Koyama)
    loss: str = "hinge"  # lsgan (the paper's) | hinge | nonsaturating; D's realism is on the LSGAN scale for all
    conditional_bn: bool = False  # G's BatchNorms modulated per category (off in the paper)
    aux_classifier: float = 0.0  # AC-GAN: weight of D's category head's cross-entropy, for D (real) and G (0 = off)
    augment: str = ""  # DiffAugment policy before D, e.g. "translation,cutout"; "" = none (the paper's)
    truncation: float = 1.5  # sampling prior N(0, I) truncated at +-t (0 = none): grids, quality, plain samples
    holdout: float = 0.1  # share of the catalogue's images the GAN never trains on; each epoch's quality uses them
    quality_per_category: int = 100  # generated images per category in each epoch's quality file (0 = no quality file)
    sample_columns: int = 8  # samples per category in each epoch's grid
    model_uri: str = ""  # where the trained generator goes; empty = <lake_uri>/models/generator.pt


@dataclass(frozen=True)
class TrainConfig:
    """How Ray Train runs a training: workers, devices, storage, failure handling."""

    num_workers: int = 1
    cpus_per_worker: int = 0  # CPUs each recommender or designer worker reserves, and its torch threads; 0 = for
    #                           the recommender a one-node Ray's free CPUs split among the workers (1 on a cluster of
    #                           several nodes), for the designer 1. The GAN's workers keep 1: their Ray Data feed
    #                           needs CPUs beside them
    use_gpu: bool = False
    storage_path: str = "lake/train"
    run_name: str = ""  # empty = derived from model and catalogue, stable across reruns
    max_failures: int = 2
    num_to_keep: int = 2


@dataclass(frozen=True)
class DesignConfig:
    """Preference maximisation, what the pure-torch engine takes. `preset=official` is the paper's PM/main.py
    (R=16, T=10, Adam lr 0.05, z0 ~ N(0, 0.5^2), eta=1 in absolute units). The defaults are the recipe chosen on
    validation users (bench/design_recipes.py): the official search run 5x longer (T=50) with the category guard
    (gamma=2 since the profile recommender of #12; 1 before), the most learned-scorer wins among recipes that keep
    the designs' realism (FID <= 1.2x plain samples', class consistency >= theirs)."""

    preset: str = ""  # a named recipe applied before the file's values (see PRESETS); "" = none
    mode: str = "optimise"  # optimise: climb from z0 | from_items: redesign the pair's top real items |
    # amortised: the trained designer's latents, no search | amortised+refine: those, then refine_steps steps
    refine_steps: int = 5  # engine steps after the designer's latents in mode amortised+refine
    restarts: int = 16
    steps: int = 50
    lr: float = 0.05
    init_std: float = 0.5
    truncation: float = 0.0  # z0 = init_std x N(0, 1) truncated at +-t (0 = untruncated, the official)
    eta: float = 1.0
    eta_scale: str = "absolute"  # absolute (official) | user_spread: eta x the std of the user's scores in the category
    warm_start: int = 0  # restarts that start from the inverted latents of the pair's top real items (0 = none)
    keep_norm: bool = False  # after each step, rescale every z to its starting norm (stays on the prior's shell)
    category_guard: float = 2.0  # weight of log p(c | G(z, c)) under a guard classifier trained apart (0 = off)
    top_k: int = 3
    diverse_choice: float = 2.0  # λ: keep restarts by objective - λ x Φ-similarity to those kept (0 = top_k by
    # objective); a restart within one grey level of a better one's picture is a copy, kept only when nothing else is.
    # λ=2 on validation users: true-taste share of the bound 0.48 -> 0.50, FID and class consistency no worse,
    # diversity of the kept designs 0.57-0.65 -> 0.73-0.77 (bench/README)
    trust_region: float = 0.0  # weight of (max(0, d/r - 1))^2, d = Φ(design)'s distance to the nearest real item of
    # its category, r = the trust_quantile of the real items' own nearest-neighbour distances (0 = off)
    trust_quantile: float = 0.9
    ensemble_spread: float = 1.0  # κ of a scorer ensemble (generation.ensemble_uris): climb the mean minus κ x the
    # spread of the scorers' standardised scores (generation/ensemble.py); no effect without members
    shift_pixels: int = 0  # p: climb the mean score over the design and four copies moved p pixels left, right, up,
    # down (generation/shifts.py), so a win must hold at nearby framings (0 = the design alone, the official)
    bounded_latent: bool = False  # optimise w with z = tanh(w) (the paper's U(-1,1) domain); official: unbounded
    batch_pairs: int = 64  # (user, category) pairs optimised together; results do not depend on it
    mixed_precision: bool = False  # bf16 autocast of the networks; z, Adam and scores stay fp32
    compile: bool = False  # torch.compile the forward pass (G -> resize -> Phi, D)
    early_stopping: bool = False  # freeze a pair once its mean objective rises by less than early_stop_tol in a step
    early_stop_tol: float = 1e-3
    invert_restarts: int = 8  # design from an item: restarts when fitting z to the item's image
    invert_steps: int = 200
    invert_lr: float = 0.05
    proximity: float = 0.1  # lambda of the ||z - z_item||^2 term that keeps an item's redesign close to it
    max_step: float = 0.0  # r: a start that redraws a real item (mode=from_items, warm_start) is projected back
    # within r x ||z_item|| of that item's latent after every step (0 = unbounded)

    @classmethod
    def official(cls, **overrides: Any) -> "DesignConfig":
        """The paper's PM/main.py settings (PRESETS["design"]["official"]) with `overrides` on top."""
        return cls(**{**PRESETS["design"]["official"], **overrides})


@dataclass(frozen=True)
class DesignerConfig:
    """The amortised designer (`fashiongen train-designer`, `training/designer_steps.py`): one network trained to
    output R = design.restarts latents per (user, category) that score well under the engine's objective."""

    epochs: int = 20
    batch_pairs: int = 64
    lr: float = 1e-3
    hidden: int = 256
    prior_weight: float = 1.0  # keeps |z|^2 / L at design.init_std^2 (where z0 is drawn)
    repel_weight: float = 1.0  # keeps a pair's R latents apart
    repel_scale: float = 0.25  # in units of design.init_std per coordinate
    validation: float = 0.1  # share of users (by id hash) never trained on: the reported validation objective
    seed: int = 0


@dataclass(frozen=True)
class GenerationConfig:
    """The designs job (`fashiongen generate`, `fashiongen design`): inputs, user selection, scheduling, output."""

    recommender_uri: str = ""  # empty = where training writes it (LakePaths.design_models)
    generator_uri: str = ""  # empty = where training writes it
    judge_uri: str = ""  # a held-out visual recommender trained apart: judges the designs, never climbed ("" = none)
    ensemble_uris: str = ""  # ','-separated visual recommenders trained apart (other seeds) that the search climbs
    # beside the recommender, as mean - design.ensemble_spread x spread ("" = the recommender alone); never the judge
    designer_uri: str = ""  # the amortised designer design.mode=amortised(+refine) uses; empty = <lake>/models/designer.pt
    realism_sample: int = 1000  # designs (rank 1) whose FID / class consistency the run summary reports (0 = off)
    pictures_uri: str = ""  # where `fashiongen design` writes pictures; empty = <lake_uri>/pictures
    users_uri: str = ""  # Parquet/CSV with user_id: design only these users (empty = all users)
    pairs_uri: str = ""  # Parquet/CSV with user_id, category: design exactly these pairs
    incremental: bool = False  # only users whose preference vector changed since the last published run
    max_users: int = 0  # design for at most this many of the selected users (a stable sample by id hash; 0 = all)
    actors: int = 0  # actor pool size; 0 = one per GPU when the cluster has GPUs, else 1 CPU actor
    use_gpu: bool = True  # use the cluster's GPUs when it has some
    rows_per_file: int = 50000  # target rows per Parquet file of the designs table
    pairs_per_block: int = 1024  # pairs per input block: the unit of work an actor takes and a crash may redo
    write_image_objects: bool = False  # also write each PNG as an object under <lake>/images/ (hashed keys)


@dataclass(frozen=True)
class NightlyConfig:
    """The nightly run: refresh user vectors from landed interactions (image network frozen), then design."""

    interactions_uri: str = ""  # landing zone: <uri>/date=YYYY-MM-DD/*.parquet; empty = <lake_uri>/landing/interactions
    refresh_steps: int = 200  # full-batch Adam steps on the changed users' learned θ (profiles are recomputed)
    refresh_lr: float = 0.05
    seed: int = 0
    max_auc_drop: float = 0.02  # refuse to publish when the changed users' validation AUC falls by more than this
    designer: bool = True  # design with amortised+refine when a designer was trained (retrained first when stale)


@dataclass(frozen=True)
class IcebergConfig:
    """The Iceberg catalog that holds the designs table (`fashiongen.lake.table`). No credentials here: a shared
    catalog (REST, Glue, Hive, a database) is configured through pyiceberg's own settings."""

    catalog_uri: str = ""  # a SQL catalog's URI (sqlite:///path, postgresql+psycopg2://host/db); empty = the
    # embedded SQLite under a local lake, and for an s3:// lake pyiceberg's settings of catalog `catalog_name`
    # (~/.pyiceberg.yaml or PYICEBERG_CATALOG__<NAME>__<KEY> variables: REST, Glue, Hive, SQL)
    catalog_name: str = "fashiongen"
    namespace: str = "fashiongen"  # the designs table is <namespace>.designs


@dataclass(frozen=True)
class Config:
    """Everything a run needs; one YAML file maps onto it section by section."""

    lake_uri: str = "lake"
    run_date: str = ""  # YYYY-MM-DD; empty = today (UTC)
    data: DataConfig = field(default_factory=DataConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    recommender: RecommenderConfig = field(default_factory=RecommenderConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    design: DesignConfig = field(default_factory=DesignConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    nightly: NightlyConfig = field(default_factory=NightlyConfig)
    iceberg: IcebergConfig = field(default_factory=IcebergConfig)
    designer: DesignerConfig = field(default_factory=DesignerConfig)


# Named recipes per section, applied before the file's values: `recommender.preset=paper` restores the paper's
# settings in one key. The quality issues add their best recipes here, one place.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "simulation": {"linear": {"taste": "linear", "category_concentration": 0.6, "style_strength": 2.5,
                              "popularity_strength": 0.5, "temperature": 2.0}},
    "recommender": {"paper": {"k": 50, "lr": 1e-4, "lambda_cnn": 1e-3, "lambda_theta": 1.0, "batch_size": 128,
                              "dropout": 0.5, "user_model": "learned", "count_prior": False, "item_bias": False,
                              "negatives_same_category": 0.0,
                              "channels_last": False}},  # not a paper setting: keeps its training bit for bit
    "gan": {"paper": {"ema_decay": 0.0, "spectral_norm": False, "beta1": 0.5, "beta2": 0.99, "lr_d": 0.0,
                      "conditioning": "concat", "loss": "lsgan", "aux_classifier": 0.0, "conditional_bn": False,
                      "augment": "",
                      "truncation": 0.0, "holdout": 0.0}},
    "design": {"official": {"mode": "optimise", "restarts": 16, "steps": 10, "lr": 0.05, "init_std": 0.5,
                            "truncation": 0.0, "eta": 1.0, "eta_scale": "absolute", "warm_start": 0, "keep_norm": False,
                            "category_guard": 0.0, "bounded_latent": False, "early_stopping": False,
                            "diverse_choice": 0.0, "trust_region": 0.0}},
}

# Settings that take one of a few words; checked with BOUNDS.
CHOICES: dict[str, tuple[str, ...]] = {
    "simulation.taste": ("sweet_spot", "linear"),
    "recommender.user_model": ("learned", "profile", "ideal_point"),
    "gan.conditioning": ("concat", "projection"),
    "gan.loss": ("lsgan", "hinge", "nonsaturating"),
    "design.mode": ("optimise", "from_items", "amortised", "amortised+refine"),
    "design.eta_scale": ("absolute", "user_spread"),
}


# Settings with a valid range ("section.key": (lowest, highest or None)), checked once every layer is applied, so a
# bad value is a one-line error naming the key before any work starts (not a crash inside a Ray worker).
BOUNDS: dict[str, tuple[float, float | None]] = {
    "data.max_items": (0, None), "data.image_size": (0, None), "data.cold_threshold": (0, None),
    "simulation.num_users": (1, None), "simulation.min_interactions": (3, None),
    "recommender.k": (1, None), "recommender.lr": (1e-12, None), "recommender.lambda_cnn": (0, None),
    "recommender.lambda_theta": (0, None), "recommender.batch_size": (1, None), "recommender.epochs": (1, None),
    "recommender.top_k": (1, None), "recommender.dropout": (0, 0.999), "recommender.eval_users": (0, None),
    "recommender.baseline_epochs": (1, None), "recommender.baseline_lr": (1e-12, None),
    "recommender.baseline_reg": (0, None), "recommender.classifier_epochs": (1, None),
    "recommender.negatives_same_category": (0, 1), "recommender.lambda_bias": (0, None),
    "gan.z_dim": (0, None), "gan.lr": (0, None), "gan.batch_size": (0, None), "gan.epochs": (0, None),
    "gan.image_size": (0, None), "gan.ema_decay": (0, 0.9999), "gan.sample_columns": (1, None),
    "gan.lr_d": (0, None), "gan.aux_classifier": (0, None), "gan.truncation": (0, None), "gan.holdout": (0, 0.5), "gan.quality_per_category": (0, None),
    "train.num_workers": (1, None), "train.cpus_per_worker": (0, None), "train.max_failures": (0, None),
    "train.num_to_keep": (1, None),
    "design.restarts": (1, None), "design.steps": (0, None), "design.refine_steps": (0, None), "design.lr": (0, None), "design.init_std": (0, None),
    "design.truncation": (0, None),
    "design.eta": (0, None), "design.top_k": (1, None), "design.batch_pairs": (1, None),
    "design.early_stop_tol": (0, None), "design.invert_restarts": (1, None), "design.invert_steps": (0, None),
    "design.invert_lr": (0, None), "design.proximity": (0, None), "design.warm_start": (0, None),
    "design.category_guard": (0, None), "design.diverse_choice": (0, None), "design.trust_region": (0, None),
    "design.ensemble_spread": (0, None), "design.shift_pixels": (0, None), "design.max_step": (0, None),
    "design.trust_quantile": (0, 1),
    "generation.max_users": (0, None), "generation.actors": (0, None), "generation.rows_per_file": (1, None),
    "generation.pairs_per_block": (1, None), "generation.realism_sample": (0, None),
    "designer.epochs": (1, None), "designer.batch_pairs": (1, None), "designer.lr": (1e-12, None),
    "designer.hidden": (1, None), "designer.prior_weight": (0, None), "designer.repel_weight": (0, None),
    "designer.repel_scale": (1e-6, None), "designer.validation": (0, 0.9),
    "nightly.refresh_steps": (0, None), "nightly.refresh_lr": (0, None), "nightly.max_auc_drop": (0, None),
}


def check_bounds(cfg: "Config") -> None:
    """ConfigError naming the first setting outside its BOUNDS or CHOICES (and a value of that kind that works)."""
    for key, words in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in words:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(words)} (e.g. {key}={words[0]})")
    for key, (lo, hi) in BOUNDS.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value < lo or (hi is not None and value > hi):
            allowed = f">= {lo}" if hi is None else f"between {lo} and {hi}"
            raise ConfigError(f"{key}={value!r} is out of range: it must be {allowed} (e.g. {key}="
                              f"{getattr(type(getattr(cfg, section))(), name)!r}, its default)")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: Any, typ: Any) -> Any:
    """Turn a YAML value or an override string into `typ`, or raise a ConfigError naming `key`."""
    if isinstance(typ, types.UnionType) or typing.get_origin(typ) is typing.Union:
        raise ConfigError(f"{key}: union types are not supported in config")
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "1", "yes", "on", "false", "0", "no", "off"}:
            return value.lower() in {"true", "1", "yes", "on"}
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        try:
            return int(str(value).replace("_", ""))
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if typ is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if typ is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__}")
        return "" if value is None else str(value)
    raise ConfigError(f"{key}: unsupported config type {typ!r}")


def _apply(obj: Any, values: dict[str, Any], prefix: str = "") -> None:
    types_ = _field_types(type(obj))
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in types_:
            known = ", ".join(sorted(types_))
            raise ConfigError(f"unknown config key '{key}' (known here: {known})")
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a section (mapping), got {value!r}")
            _apply(current, value, prefix=f"{key}.")
        else:
            object.__setattr__(obj, name, _coerce(key, value, types_[name]))  # only while loading


def parse_override(text: str) -> dict[str, Any]:
    """`a.b=c` -> {"a": {"b": "c"}}; raises ConfigError when there is no '='."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. recommender.epochs=3)")
    key, value = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {text!r} has an empty key part")
    nested: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        nested = {part: nested}
    return nested


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the YAML file (if any), then each `key=value` override in order; relative local paths
    become absolute (see `_absolute_paths`)."""
    layers: list[dict[str, Any]] = []
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist (see configs/ for examples)")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {str(p)!r} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(p)!r} must hold a mapping of sections")
        layers.append(data)
    layers += [parse_override(item) for item in overrides]
    cfg = Config()
    _apply_presets(cfg, layers)
    for layer in layers:
        _apply(cfg, layer)
    check_bounds(cfg)
    _absolute_paths(cfg)
    return cfg


def _apply_presets(cfg: Config, layers: list[dict[str, Any]]) -> None:
    """Apply each section's last-named preset first, so the file's and the overrides' values win over it."""
    for section, recipes in PRESETS.items():
        names = [layer[section]["preset"] for layer in layers
                 if isinstance(layer.get(section), dict) and "preset" in layer[section]]
        name = str(names[-1]) if names else ""
        if name and name not in recipes:
            raise ConfigError(f"{section}.preset: unknown preset {name!r} (known: {sorted(recipes)})")
        if name:
            _apply(getattr(cfg, section), recipes[name], prefix=f"{section}.")


_PATH_SUFFIXES = ("_uri", "_path", "_dir")
_LIST_SUFFIX = "_uris"  # ','-separated locations


def _absolute(value: str) -> str:
    return value if not value or "://" in value or os.path.isabs(value) else os.path.abspath(value)


def _absolute_paths(obj: Any) -> None:
    """Resolve relative local paths (fields named *_uri, *_path, *_dir, and each entry of *_uris) against the
    current directory, so that Ray workers, which run in other directories, read and write the same files as the
    driver."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _absolute_paths(value)
        elif f.name.endswith(_PATH_SUFFIXES) and isinstance(value, str):
            object.__setattr__(obj, f.name, _absolute(value))
        elif f.name.endswith(_LIST_SUFFIX) and isinstance(value, str) and value:
            object.__setattr__(obj, f.name, ",".join(_absolute(v.strip()) for v in value.split(",") if v.strip()))


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain nested dicts (for logging, checkpoints and Ray's train_loop_config)."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a config dataclass from `to_dict` output (unknown keys are an error)."""
    obj = cls()
    _apply(obj, values)
    return obj
