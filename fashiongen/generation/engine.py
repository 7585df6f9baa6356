"""Preference maximisation: design images a user would like, for many (user, category) pairs at once.

For each pair (u, c), R latent codes are optimised with Adam for T steps to maximise

    objective(z) = θ_u · Φ(G(z, c)) − η_uc · (D(G(z, c), c) − 1)²   [− λ · ‖z − z_item‖² in from_items mode]

as the official `PM/main.py` does with `design.preset=official` (R=16, T=10, Adam lr 0.05, z0 ~ N(0, 0.5²), η=1,
no tanh, the loss is the mean over the R restarts). The recipe's levers (DesignConfig):
- eta_scale=user_spread: η_uc = η × the std of θ_u·Φ_i over category c's items, so the realism penalty is in units
  of the user's own score spread (the paper's scores are several times this project's);
- keep_norm: after every step each z is rescaled to its starting norm, so the search moves on the shell where
  z0 was drawn (the prior's typical set at init_std=1) instead of drifting off where G was trained;
- warm_start=m: m of the R restarts start from the inverted latents of the pair's top-m real items
  (`invert.invert_images`, each item seeded by its index and inverted once per engine);
- mode=from_items: R = top_k starts, one per top real item, each anchored by the proximity term (a redesign);
- max_step=r: every start that redraws a real item is projected back within r × ‖z_item‖ of its latent after each
  step (`trust_region.bounded_step`), a hard bound on how far a redesign moves;
- category_guard=γ: + γ · log p(c | G(z, c)) under a guard classifier trained apart from the realism judge's (see
  training/classifier.py), so a design that climbs θ·Φ out of its category pays for it;
- trust_region=τ: − τ · (max(0, d − 1))², d the distance of Φ(G(z, c)) to the nearest real item of c in units of
  the category's real spacing (`trust_region.TrustRegion`), so the search stays where garments exist;
- early_stopping: a pair stops once its mean objective rises by less than early_stop_tol in a step;
- mode=amortised: the R starts are the amortised designer's latents (`models/designer.py`, one forward pass) and no
  step is taken; mode=amortised+refine: the designer's latents, then design.refine_steps engine steps.
G's images are resized to the recommender's input size with nearest neighbour (the official
64→224 `resize_nearest_neighbor`) and their channels adapted: RGB → L with PIL's luminance weights
(0.299, 0.587, 0.114, how the catalogue's grey images were made), L → RGB by repeating the channel.

Batching. Many pairs share one forward/backward: the loss is the SUM over pairs of each pair's mean over restarts,
so every z receives exactly the gradient of the official per-user run (1/R · ∂objective/∂z). The networks run in
eval mode (BatchNorm uses running statistics) so one sample never influences another, and Adam is elementwise,
so each pair's trajectory does not depend on the other pairs in the batch. z0 is drawn from a CPU generator seeded
by a hash of (pair_id, run_date): a pair gets the same designs whatever batch or machine it lands on (up to the
float rounding of batched kernels).

    engine = PreferenceEngine(recommender, generator, cfg.generation, item_category, device="cpu", oracle=truth)
    result = engine.optimise(pair_ids, user_idx, category_idx, run_date="2024-05-01")
    result.designs   # one row per (pair, rank): pair_id, rank, user_idx, category_idx, score, realism, objective,
                     #   latent (n, latent_dim) float32, source_item_idx (-1: a prior start), image (n, H, W, C)
                     #   uint8 [, oracle_score] [, judge_score]
    result.pairs     # one row per pair: pair_id, user_idx, category_idx, best_score, initial_best_score, lift,
                     #   dataset_top_item_idx (P, k), dataset_top_scores (P, k), steps_run
                     #   [, oracle_best_generated, oracle_dataset_top (P, k)] [, judge_dataset_top (P, k)]

With `ensemble` (visual recommenders trained apart, other seeds) the objective climbs the mean minus
design.ensemble_spread × the spread of their standardised scores (`ensemble.ScorerEnsemble`); `score` stays the
recommender's own. With design.shift_pixels = p the climbed score is the mean over the design and four copies moved p
pixels (`shifts.shifted_views`).
A held-out `judge` (another visual recommender trained apart) scores the kept designs and the retrieved items
after the optimisation; it never enters the objective.

`category_idx` and `item_category` index the GENERATOR's categories (`category_mapping` maps a catalogue's).
Ranks order a pair's restarts by their final objective (score minus realism penalty); `lift` is the best
preference score among the kept designs minus the user's best real item of that category under the same scorer.
Catalogue slots beyond a category's size are padded with item index -1 and NaN scores.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fashiongen.config import DesignConfig
from fashiongen.errors import FashiongenError
from fashiongen.generation.ensemble import ScorerEnsemble
from fashiongen.generation.shifts import shifted_views, view_count, view_mean
from fashiongen.generation.trust_region import TrustRegion, bounded_step
from fashiongen.models.contract import (ConditionalGenerator, Recommender, VisualRecommender, sample_latents, visual_score,
                                        visual_score_matrix)

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # PIL's RGB -> "L" conversion
MODES = ("optimise", "from_items", "amortised", "amortised+refine")
AMORTISED = ("amortised", "amortised+refine")
ETA_SCALES = ("absolute", "user_spread")
COPY_TOLERANCE = 2 / 255  # one grey level of a published uint8 picture, in the generator's [-1, 1] pixels


class EngineError(FashiongenError, ValueError):
    """Input the preference engine cannot optimise; the message names the pair or setting and the fix."""


class PreferenceOracle(Protocol):
    """What the engine needs of a simulated catalogue's ground truth (`fashiongen.data.oracle.GroundTruth`):
    `taste_logit` of catalogue items is `image_preference` of their images (no hidden popularity), so the
    designs and the retrieved items are judged on the same scale."""

    def taste_logit(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray: ...

    def image_z(self, images: np.ndarray, category_idx: np.ndarray) -> np.ndarray: ...

    def preference_of_z(self, user_idx: np.ndarray, z: np.ndarray, category_idx: np.ndarray) -> np.ndarray: ...

    def extrapolation(self, z: np.ndarray, category_idx: np.ndarray) -> np.ndarray: ...

    def novelty(self, z: np.ndarray, category_idx: np.ndarray) -> np.ndarray: ...

    def category_best(self, user_idx: np.ndarray, category_idx: np.ndarray) -> np.ndarray: ...

    def diversity(self, z: np.ndarray) -> np.ndarray: ...

    @property
    def item_z(self) -> np.ndarray: ...


def pair_seed(pair: str, run_date: str) -> int:
    """A 63-bit seed from (pair_id, run_date): the same pair on the same date always starts from the same z0."""
    digest = hashlib.blake2b(f"{run_date}\x1f{pair}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def initial_latents(pair: str, run_date: str, restarts: int, latent_dim: int, init_std: float,
                    truncation: float = 0.0) -> torch.Tensor:
    """z0 ~ init_std × N(0, 1) (truncated at ±`truncation` when > 0), (restarts, latent_dim) float32 on CPU, fixed
    by (pair, run_date)."""
    gen = torch.Generator().manual_seed(pair_seed(pair, run_date))
    return sample_latents(restarts, latent_dim, truncation, gen) * init_std


def category_mapping(catalogue_categories: Sequence[str], generator_categories: Sequence[str]) -> np.ndarray:
    """Catalogue category index -> generator category index (-1 where the generator lacks the category)."""
    where = {name: i for i, name in enumerate(generator_categories)}
    return np.array([where.get(name, -1) for name in catalogue_categories], dtype=np.int64)


def check_run_date(run_date: str) -> str:
    try:
        dt.date.fromisoformat(run_date)
    except (TypeError, ValueError):
        raise EngineError(f"run_date {run_date!r} is not a YYYY-MM-DD date (set run_date=YYYY-MM-DD)") from None
    return run_date


def image_adapter(source: tuple[int, int, int], target: tuple[int, int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A differentiable map from images of shape `source` (C, H, W) to `target`: channels, then nearest resize."""
    (c_in, h_in, w_in), (c_out, h_out, w_out) = source, target
    if c_in != c_out and (c_in, c_out) not in {(3, 1), (1, 3)}:
        raise EngineError(f"cannot feed {c_in}-channel generator images to a {c_out}-channel recommender "
                          "(only RGB<->L are adapted): train both models on the same catalogue")

    def adapt(x: torch.Tensor) -> torch.Tensor:
        if c_in == 3 and c_out == 1:
            r, g, b = LUMA_WEIGHTS
            x = r * x[:, 0:1] + g * x[:, 1:2] + b * x[:, 2:3]
        elif c_in == 1 and c_out == 3:
            x = x.expand(-1, 3, -1, -1)
        if (h_in, w_in) != (h_out, w_out):
            x = F.interpolate(x, size=(h_out, w_out), mode="nearest")
        return x

    return adapt


def to_uint8_nhwc(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] (N, C, H, W) tensor -> uint8 (N, H, W, C), rounding as `data.images.from_tensor_range`."""
    x = torch.clamp(torch.round(images.detach().float() * 127.5 + 127.5), 0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


class DesignObjective:
    """The pair's visual score v · Φ(G(z, c)) + b − a · Φ² (`design_vectors`, `design_curvature`: θ_u · Φ in the
    paper) and D(G(z, c), c) for a batch of latents, shared by the engine and item redesign.
    Freezes both models (eval mode, no parameter gradients: BatchNorm uses its running statistics so samples stay
    independent, and backward computes gradients for the latents only)."""

    def __init__(self, recommender: Recommender, generator: ConditionalGenerator, settings: DesignConfig,
                 device: torch.device | str = "cpu", item_category: np.ndarray | None = None,
                 ensemble: Sequence[VisualRecommender] = ()):
        if not isinstance(recommender, VisualRecommender):
            raise EngineError(f"recommender kind {recommender.kind!r} cannot score new images; "
                              "set recommender.model=dvbpr and train it")
        self.device = torch.device(device)
        self.recommender = recommender.to(self.device)
        self.generator = generator.to(self.device)
        recommender.freeze()
        generator.freeze()
        self.settings = settings
        self.theta = recommender.user_vectors().detach().to(self.device, torch.float32)
        self.trust_region = TrustRegion(recommender.item_features().to(self.device), item_category,
                                        len(generator.categories), settings.trust_quantile) \
            if settings.trust_region and item_category is not None else None
        self.adapt = image_adapter(tuple(generator.image_shape), tuple(recommender.image_shape))
        if settings.shift_pixels >= min(generator.image_shape[1:]):
            raise EngineError(f"design.shift_pixels={settings.shift_pixels} moves the generator's "
                              f"{generator.image_shape[1]}x{generator.image_shape[2]} images off their frame: use a "
                              "few pixels, e.g. design.shift_pixels=1")
        self.ensemble = self._ensemble(ensemble, item_category) if ensemble else None
        self._forward = torch.compile(self._forward_eager) if settings.compile else self._forward_eager

    def _ensemble(self, members: Sequence[VisualRecommender], item_category: np.ndarray | None) -> ScorerEnsemble:
        """The scorer ensemble of the climbed recommender and `members` (checked to score the same catalogue)."""
        shape = (len(self.theta), len(self.recommender.item_features()))
        for j, member in enumerate(members):
            if not isinstance(member, VisualRecommender):
                raise EngineError(f"ensemble member {j} (kind {member.kind!r}) cannot score new images: train "
                                  "visual recommenders (e.g. dvbpr) apart with other seeds")
            if (len(member.user_vectors()), len(member.item_features())) != shape:
                raise EngineError(f"ensemble member {j} knows {len(member.user_vectors())} users and "
                                  f"{len(member.item_features())} items, the recommender {shape[0]} and {shape[1]}: "
                                  "train every member on the same catalogue")
            member.to(self.device)
            member.freeze()
        if item_category is None:
            raise EngineError("a scorer ensemble standardises each scorer per category: pass item_category")
        adapters = [image_adapter(tuple(self.generator.image_shape), tuple(m.image_shape)) for m in members]
        return ScorerEnsemble(self.recommender, members, adapters, item_category, self.settings.ensemble_spread,
                              self.device)

    @property
    def latent_dim(self) -> int:
        return int(self.generator.latent_dim)

    def _forward_eager(self, z: torch.Tensor, vectors: torch.Tensor, offsets: torch.Tensor,
                       curvature: torch.Tensor | None, users: torch.Tensor, categories: torch.Tensor):
        n, views = len(z), view_count(self.settings.shift_pixels)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.settings.mixed_precision):
            images = self.generator.generate(z, categories)
            framed = shifted_views(images, self.settings.shift_pixels)
            phi = self.recommender.encode_images(self.adapt(framed))
            member_phi = self.ensemble.encode(framed) if self.ensemble is not None else []
            realism = self.generator.discriminate(images, categories)
        phi = phi.float()
        if views > 1:
            vectors, offsets = vectors.repeat(views, 1), offsets.repeat(views)
            curvature = None if curvature is None else curvature.repeat(views, 1)
            users, categories = users.repeat(views), categories.repeat(views)
        score = visual_score(phi, vectors, offsets, curvature)
        climbed = score if self.ensemble is None else self.ensemble.combine(score, member_phi, users, categories)
        return images.float(), phi[:n], score[:n], view_mean(climbed, views), realism.float().reshape(-1)

    def __call__(self, z: torch.Tensor, users: torch.Tensor, categories: torch.Tensor,
                 eta: torch.Tensor | float | None = None):
        """Latents (n, L), user and category indices (n,) -> images (n, C, H, W), score, realism, objective.
        `score` is the recommender's; the objective climbs the scorer ensemble's score when there is one.
        `eta` (a number or one per latent) replaces settings.eta, e.g. when it is scaled per user."""
        images, phi, score, climbed, realism = self._forward(z, *self.recommender.score_terms(users, categories),
                                                             users, categories)
        objective = climbed - (self.settings.eta if eta is None else eta) * (realism - 1.0) ** 2
        if self.trust_region is not None:
            objective = objective - self.settings.trust_region * self.trust_region.penalty(phi, categories)
        return images, score, realism, objective


@dataclass
class EngineResult:
    """Designs (one row per pair and rank), pairs (one row per pair), and the per-step trajectory if asked:
    trajectory["image"] (P, T+1, R, H, W, C) uint8, ["score"] / ["objective"] (P, T+1, R), ["step"] (P, T+1);
    with early stopping T+1 is the steps actually run (a stopped pair repeats its last z)."""

    designs: dict[str, np.ndarray]
    pairs: dict[str, np.ndarray]
    trajectory: dict[str, np.ndarray] | None = None


class PreferenceEngine:
    """Batched preference maximisation over (user, category) pairs; see the module docstring."""

    def __init__(self, recommender: Recommender, generator: ConditionalGenerator, settings: DesignConfig,
                 item_category: np.ndarray, device: torch.device | str = "cpu",
                 oracle: PreferenceOracle | None = None, item_images: np.ndarray | None = None,
                 judge: VisualRecommender | None = None, guard: torch.nn.Module | None = None,
                 guard_class: np.ndarray | None = None, designer: torch.nn.Module | None = None,
                 ensemble: Sequence[VisualRecommender] = ()):
        if settings.restarts < 1 or settings.steps < 0 or settings.top_k < 1 or settings.batch_pairs < 1:
            raise EngineError("design.restarts, top_k and batch_pairs must be >= 1 and design.steps >= 0 "
                              f"(got {settings.restarts}, {settings.top_k}, {settings.batch_pairs}, {settings.steps})")
        if settings.mode not in MODES or settings.eta_scale not in ETA_SCALES:
            raise EngineError(f"design.mode must be one of {MODES} and design.eta_scale one of {ETA_SCALES} "
                              f"(got {settings.mode!r}, {settings.eta_scale!r})")
        self.settings = settings
        self.item_category = np.asarray(item_category, dtype=np.int64)
        if self.item_category.shape != (len(recommender.item_features()),):
            raise EngineError(f"item_category has shape {self.item_category.shape} but the recommender has "
                              f"{len(recommender.item_features())} items: pass the catalogue the recommender was "
                              "trained on")
        self.objective = DesignObjective(recommender, generator, settings, device, self.item_category, ensemble)
        self.device = self.objective.device
        self.categories = list(generator.categories)
        self.oracle = oracle
        self.item_features = recommender.item_features().detach().to(self.device, torch.float32)
        self._item_category_t = torch.from_numpy(self.item_category).to(self.device)
        # from_items: one start per top real item; optimise: the best top_k of R restarts are kept.
        self.designer = None
        if settings.mode in AMORTISED:
            if designer is None:
                raise EngineError(f"design.mode={settings.mode} needs a trained designer (fashiongen train-designer; "
                                  "generation.designer_uri)")
            designer.check_compatible(recommender, generator)
            self.designer = designer.to(self.device).eval().requires_grad_(False)
        self.restarts = settings.top_k if settings.mode == "from_items" else \
            designer.restarts if self.designer is not None else settings.restarts
        self.steps = 0 if settings.mode == "amortised" else \
            settings.refine_steps if settings.mode == "amortised+refine" else settings.steps
        self.top_k = min(settings.top_k, self.restarts)
        self.warm_items = self.top_k if settings.mode == "from_items" else min(settings.warm_start, self.restarts)
        if self.warm_items and item_images is None:
            raise EngineError(f"design.mode={settings.mode} with design.warm_start={settings.warm_start} starts from "
                              "real items: pass the catalogue's images (item_images)")
        if settings.max_step and not self.warm_items:
            raise EngineError(f"design.max_step={settings.max_step} bounds the step from a real item's latent, and "
                              "no start redraws one: set design.mode=from_items or design.warm_start >= 1")
        if item_images is not None and len(item_images) != len(self.item_features):
            raise EngineError(f"{len(item_images)} item images but the recommender has {len(self.item_features)} "
                              "items: pass the catalogue the recommender was trained on")
        self.item_images = item_images
        self._inverted: dict[int, torch.Tensor] = {}  # item index -> its fitted latent (an actor reuses them)
        self.judge = self._judge_view(judge) if judge is not None else None
        if settings.category_guard and (guard is None or guard_class is None):
            raise EngineError(f"design.category_guard={settings.category_guard} needs the guard classifier and the "
                              "class of each generator category (guard, guard_class)")
        if settings.category_guard:
            shape = (guard.config["in_channels"], guard.config["image_size"], guard.config["image_size"])
            self.guard = guard.to(self.device).eval().requires_grad_(False)
            self.guard_adapt = image_adapter(tuple(generator.image_shape), shape)
            self.guard_class = torch.as_tensor(np.asarray(guard_class, np.int64), device=self.device)

    def _judge_view(self, judge: VisualRecommender) -> tuple[VisualRecommender, torch.Tensor, Callable]:
        """The held-out scorer, its item features and image adapter (it never feeds a gradient)."""
        if not isinstance(judge, VisualRecommender):
            raise EngineError(f"the held-out scorer (kind {judge.kind!r}) cannot score new images: train a visual "
                              "recommender (e.g. dvbpr) apart and name it in generation.judge_uri")
        theta, phi = judge.user_vectors().detach(), judge.item_features().detach()
        if theta.shape[0] != len(self.objective.theta) or phi.shape[0] != len(self.item_features):
            raise EngineError(f"the held-out scorer knows {theta.shape[0]} users and {phi.shape[0]} items, the "
                              f"recommender {len(self.objective.theta)} and {len(self.item_features)}: train both "
                              "on the same catalogue")
        judge.to(self.device)
        judge.freeze()
        adapt = image_adapter(tuple(self.objective.generator.image_shape), tuple(judge.image_shape))
        return judge, phi.to(self.device, torch.float32), adapt

    # ------------------------------------------------------------------ validation
    def _validate(self, pair_ids: Sequence[str], user_idx: np.ndarray, category_idx: np.ndarray) -> None:
        n_users, n_cat = len(self.objective.theta), len(self.categories)
        if not (len(pair_ids) == len(user_idx) == len(category_idx)):
            raise EngineError(f"pair_ids, user_idx and category_idx differ in length "
                              f"({len(pair_ids)}, {len(user_idx)}, {len(category_idx)})")
        bad = np.flatnonzero((user_idx < 0) | (user_idx >= n_users))
        if bad.size:
            i = bad[0]
            raise EngineError(f"pair {pair_ids[i]!r}: unknown user index {user_idx[i]} (the recommender knows users "
                              f"0..{n_users - 1}); build pairs from the catalogue the recommender was trained on")
        bad = np.flatnonzero((category_idx < 0) | (category_idx >= n_cat))
        if bad.size:
            i = bad[0]
            raise EngineError(f"pair {pair_ids[i]!r}: category index {category_idx[i]} is not one the generator "
                              f"knows ({self.categories}); map catalogue categories with category_mapping")
        finite = torch.isfinite(self.objective.theta[torch.from_numpy(user_idx).to(self.device)]).all(dim=1)
        if not bool(finite.all()):
            i = int(torch.nonzero(~finite)[0, 0])
            raise EngineError(f"pair {pair_ids[i]!r}: user {user_idx[i]}'s preference vector is not finite; the "
                              "recommender checkpoint is corrupt or its training diverged: retrain it")

    # ------------------------------------------------------------------ public
    def optimise(self, pair_ids: Sequence[str], user_idx: np.ndarray, category_idx: np.ndarray, run_date: str,
                 trajectory: bool = False) -> EngineResult:
        """Optimise every pair (in chunks of `batch_pairs`) and compare with the user's best catalogue items."""
        check_run_date(run_date)
        pair_ids = [str(p) for p in pair_ids]
        user_idx = np.asarray(user_idx, dtype=np.int64).reshape(-1)
        category_idx = np.asarray(category_idx, dtype=np.int64).reshape(-1)
        self._validate(pair_ids, user_idx, category_idx)
        chunks = [self._optimise_chunk(pair_ids[s:s + self.settings.batch_pairs], user_idx[s:s + self.settings.batch_pairs],
                                       category_idx[s:s + self.settings.batch_pairs], run_date, trajectory)
                  for s in range(0, len(pair_ids), self.settings.batch_pairs)]
        if not chunks:
            chunks = [self._optimise_chunk([], user_idx, category_idx, run_date, trajectory)]

        def merge(part: str) -> dict[str, np.ndarray]:
            return {key: np.concatenate([getattr(c, part)[key] for c in chunks]) for key in getattr(chunks[0], part)}

        return EngineResult(designs=merge("designs"), pairs=merge("pairs"),
                            trajectory=merge("trajectory") if trajectory else None)

    def dataset_top(self, user_idx: np.ndarray, category_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each user's top-k catalogue items of the paired category by θ_u·Φ_i: indices (P, k) and scores (P, k)."""
        idx, scores, _ = self._catalogue_view(user_idx, category_idx)
        return idx, scores

    # ------------------------------------------------------------------ internals
    def _catalogue_view(self, user_idx: np.ndarray, category_idx: np.ndarray):
        """Top-k item indices (P, k) and scores (P, k) of each pair's category (padded with -1 / NaN), and the std
        of the user's scores over that category's items (P,), the unit of design.eta_scale=user_spread."""
        users = torch.from_numpy(np.asarray(user_idx, dtype=np.int64)).to(self.device)
        cats = torch.from_numpy(np.asarray(category_idx, dtype=np.int64)).to(self.device)
        scores = visual_score_matrix(self.item_features, *self.objective.recommender.score_terms(users, cats))
        member = self._item_category_t[None, :] == cats[:, None]
        count = member.sum(dim=1).clamp(min=1)
        mean = torch.where(member, scores, 0.0).sum(dim=1) / count
        spread = torch.sqrt(torch.where(member, (scores - mean[:, None]) ** 2, 0.0).sum(dim=1) / count)
        scores = scores.masked_fill(~member, float("-inf"))
        k = min(self.top_k, scores.shape[1])
        top_scores, top_idx = torch.topk(scores, k, dim=1)
        top_idx = torch.where(torch.isinf(top_scores), torch.full_like(top_idx, -1), top_idx)
        top_scores = torch.where(torch.isinf(top_scores), torch.full_like(top_scores, float("nan")), top_scores)
        pad = self.top_k - k
        idx, sc = top_idx.cpu().numpy(), top_scores.cpu().numpy()
        if pad:
            idx = np.pad(idx, ((0, 0), (0, pad)), constant_values=-1)
            sc = np.pad(sc, ((0, 0), (0, pad)), constant_values=np.nan)
        return idx, sc.astype(np.float32), spread.detach()

    def _latent(self, w: torch.Tensor) -> torch.Tensor:
        return torch.tanh(w) if self.settings.bounded_latent else w

    def _item_latents(self, items: np.ndarray) -> torch.Tensor:
        """Latents that redraw catalogue items (inverted once per item and kept: users share their top items).
        Each item's fit is seeded by its index alone, so it does not depend on the batch."""
        from fashiongen.generation.invert import invert_images

        todo = np.array(sorted({int(i) for i in items} - self._inverted.keys()), dtype=np.int64)
        if todo.size:
            fit = invert_images(self.objective.generator, self.item_images[todo], self.item_category[todo],
                                self.settings, seed=todo + 1, device=self.device)
            for i, z in zip(todo, torch.from_numpy(fit.latent)):
                self._inverted[int(i)] = z
        return torch.stack([self._inverted[int(i)] for i in items]) if len(items) else \
            torch.zeros(0, self.objective.latent_dim)

    def latent_objective(self, z: torch.Tensor, users: torch.Tensor, categories: torch.Tensor,
                         eta: torch.Tensor | float | None = None):
        """The design objective of latents (one per row; users and categories alike): the recommender's score
        minus the realism penalty, plus the category guard when on. -> images, score, realism, objective."""
        images, score, realism, objective = self.objective(z, users, categories, eta)
        if self.settings.category_guard:
            log_p = torch.log_softmax(self.guard(self.guard_adapt(images)), dim=1)
            objective = objective + self.settings.category_guard * \
                log_p.gather(1, self.guard_class[categories][:, None])[:, 0]
        return images, score, realism, objective

    def eta_of(self, spread: torch.Tensor) -> torch.Tensor:
        """η per pair: design.eta, times the user's score spread in the category with eta_scale=user_spread."""
        return self.settings.eta * (spread if self.settings.eta_scale == "user_spread" else torch.ones_like(spread))

    def pair_eta(self, user_idx: np.ndarray, category_idx: np.ndarray) -> torch.Tensor:
        """η of each pair (P,), as the engine's search uses it."""
        if self.settings.eta_scale != "user_spread":
            return torch.full((len(user_idx),), float(self.settings.eta), device=self.device)
        return self.eta_of(self._catalogue_view(user_idx, category_idx)[2])

    def _starts(self, pair_ids: list[str], run_date: str, top_idx: np.ndarray, user_idx: np.ndarray,
                category_idx: np.ndarray):
        """z0 (P·R, L), the item each start redraws (P·R,, -1 = a prior draw or the designer's) and whether it is
        anchored to it."""
        n_pairs, n_restarts, latent_dim = len(pair_ids), self.restarts, self.objective.latent_dim
        if self.designer is not None and n_pairs:
            with torch.no_grad():
                users = torch.from_numpy(user_idx).to(self.device)
                cats = torch.from_numpy(category_idx).to(self.device)
                vectors, offsets = self.objective.recommender.design_vectors(users, cats)
                z0 = self.designer(vectors.float(), offsets.float(), cats).float().cpu()
        elif n_pairs:
            z0 = torch.stack([initial_latents(p, run_date, n_restarts, latent_dim, self.settings.init_std,
                                              self.settings.truncation) for p in pair_ids])
        else:
            z0 = torch.zeros(0, n_restarts, latent_dim)
        source = np.full((n_pairs, n_restarts), -1, dtype=np.int64)
        source[:, :self.warm_items] = top_idx[:, :self.warm_items]
        warm = source >= 0
        if warm.any():
            z0[torch.from_numpy(warm)] = self._item_latents(source[warm])
        anchored = torch.from_numpy(warm.reshape(-1)) if self.settings.mode == "from_items" else \
            torch.zeros(n_pairs * n_restarts, dtype=torch.bool)
        return z0.reshape(n_pairs * n_restarts, latent_dim).to(self.device), source.reshape(-1), \
            anchored.to(self.device)

    def _optimise_chunk(self, pair_ids: list[str], user_idx: np.ndarray, category_idx: np.ndarray, run_date: str,
                        trajectory: bool) -> EngineResult:
        s, n_pairs, n_restarts, k = self.settings, len(pair_ids), self.restarts, self.top_k
        data_idx, data_scores, spread = self._catalogue_view(user_idx, category_idx)
        z0, source, anchored = self._starts(pair_ids, run_date, data_idx, user_idx, category_idx)
        anchor = z0.clone()
        proximity = s.proximity * anchored.float()
        radius = torch.where(torch.from_numpy(source >= 0).to(self.device), s.max_step * anchor.norm(dim=1),
                             float("inf")) if s.max_step else None
        eta = self.eta_of(spread).repeat_interleave(n_restarts)
        w0 = torch.atanh(z0.clamp(-0.999, 0.999)) if s.bounded_latent else z0
        w = w0.clone().requires_grad_(True)
        norm0 = w0.norm(dim=1, keepdim=True)
        users = torch.from_numpy(user_idx).to(self.device).repeat_interleave(n_restarts)
        cats = torch.from_numpy(category_idx).to(self.device).repeat_interleave(n_restarts)
        optimiser = torch.optim.Adam([w], lr=s.lr)
        active = torch.ones(n_pairs, dtype=torch.bool, device=self.device)
        steps_run = torch.zeros(n_pairs, dtype=torch.int64, device=self.device)
        previous: torch.Tensor | None = None
        initial_best = None
        traj: dict[str, list] = {"image": [], "score": [], "objective": []}

        def evaluate(z: torch.Tensor):
            images, score, realism, objective = self.latent_objective(z, users, cats, eta)
            return images, score, realism, objective - proximity * ((z - anchor) ** 2).sum(dim=1)

        def record(images, score, objective) -> None:
            if trajectory:
                traj["image"].append(to_uint8_nhwc(images).reshape(n_pairs, n_restarts, *images.shape[2:], images.shape[1]))
                traj["score"].append(score.detach().reshape(n_pairs, n_restarts).cpu().numpy())
                traj["objective"].append(objective.detach().reshape(n_pairs, n_restarts).cpu().numpy())

        for _ in range(self.steps if n_pairs else 0):
            images, score, _realism, objective = evaluate(self._latent(w))
            if initial_best is None:
                initial_best = score.detach().reshape(n_pairs, n_restarts).max(dim=1).values
            record(images, score, objective)
            pair_objective = objective.reshape(n_pairs, n_restarts).mean(dim=1)
            if s.early_stopping and previous is not None:
                active &= (pair_objective.detach() - previous) >= s.early_stop_tol
                if not bool(active.any()):
                    break
            previous = pair_objective.detach()
            optimiser.zero_grad(set_to_none=True)
            (-pair_objective.sum()).backward()
            if s.early_stopping:
                frozen_w = w.detach().clone()
                optimiser.step()
                with torch.no_grad():
                    keep = (~active).repeat_interleave(n_restarts)
                    w[keep] = frozen_w[keep]
            else:
                optimiser.step()
            if s.keep_norm:
                with torch.no_grad():
                    w.mul_(norm0 / w.norm(dim=1, keepdim=True).clamp(min=1e-12))
            if radius is not None:
                with torch.no_grad():
                    z = self._latent(w)
                    outside = (z - anchor).norm(dim=1) > radius
                    z = bounded_step(z[outside], anchor[outside], radius[outside])
                    w[outside] = torch.atanh(z.clamp(-0.999, 0.999)) if s.bounded_latent else z
            steps_run += active.long()

        with torch.no_grad():
            z = self._latent(w.detach())
            images, score, realism, objective = evaluate(z)
        record(images, score, objective)
        if initial_best is None:
            initial_best = score.reshape(n_pairs, n_restarts).max(dim=1).values

        order = self._choose(images, objective.reshape(n_pairs, n_restarts), k)
        flat = (order + torch.arange(n_pairs, device=self.device)[:, None] * n_restarts).reshape(-1)
        top_images = to_uint8_nhwc(images[flat])
        top_score = score[flat].cpu().numpy()
        designs = {
            "pair_id": np.repeat(np.array(pair_ids, dtype=object), k),
            "rank": np.tile(np.arange(k, dtype=np.int32), n_pairs),
            "user_idx": np.repeat(user_idx, k),
            "category_idx": np.repeat(category_idx, k),
            "score": top_score.astype(np.float32),
            "realism": realism[flat].cpu().numpy().astype(np.float32),
            "objective": objective[flat].cpu().numpy().astype(np.float32),
            "latent": z[flat].cpu().numpy().astype(np.float32),
            "source_item_idx": source[flat.cpu().numpy()],
            "image": top_images,
        }
        best = top_score.reshape(n_pairs, k).max(axis=1) if n_pairs else np.zeros(0, np.float32)
        pairs = {
            "pair_id": np.array(pair_ids, dtype=object),
            "user_idx": user_idx,
            "category_idx": category_idx,
            "best_score": best.astype(np.float32),
            "initial_best_score": initial_best.cpu().numpy().astype(np.float32),
            "lift": (best - data_scores[:, 0]).astype(np.float32),
            "dataset_top_item_idx": data_idx,
            "dataset_top_scores": data_scores,
            "steps_run": steps_run.cpu().numpy(),
        }
        if self.judge is not None:
            self._add_judge(designs, pairs, images[flat])
        if self.oracle is not None:
            self._add_oracle(designs, pairs)
        out_traj = None
        if trajectory:
            out_traj = {name: np.stack(vals, axis=1) if vals else np.zeros((n_pairs, 0, n_restarts))
                        for name, vals in traj.items()}
            steps_taken = len(traj["score"]) - 1
            out_traj["step"] = np.tile(np.arange(steps_taken + 1), (n_pairs, 1))
        return EngineResult(designs=designs, pairs=pairs, trajectory=out_traj)

    def _choose(self, images: torch.Tensor, objective: torch.Tensor, k: int) -> torch.Tensor:
        """(P, k) restarts kept per pair: the top k by objective, or with design.diverse_choice = λ > 0 a greedy
        maximal-marginal-relevance choice in Φ space among the pair's distinct restarts: the best first, then each
        next restart maximises its objective (in units of the pair's spread over restarts) minus λ × its largest
        cosine similarity to those kept, Φ taken relative to the mean of the pair's distinct restarts (raw Φ of
        converged restarts are all alike). Copies of a better restart (`_copies`) come last, best first."""
        by_objective = torch.argsort(-objective, dim=1, stable=True)
        if self.settings.diverse_choice <= 0 or k < 2 or objective.shape[0] == 0:
            return by_objective[:, :k]
        n_pairs, n_restarts = objective.shape
        rows = torch.arange(n_pairs, device=objective.device)
        position = torch.argsort(by_objective, dim=1)  # (P, R) each restart's rank by objective
        copies = self._copies(images.reshape(n_pairs, n_restarts, -1).float(), position)
        distinct = (~copies).float()[..., None]
        with torch.no_grad():
            phi = self.objective.recommender.encode_images(self.objective.adapt(images)).float()
        phi = phi.reshape(n_pairs, n_restarts, -1)
        centre = (phi * distinct).sum(dim=1, keepdim=True) / distinct.sum(dim=1, keepdim=True)
        phi = F.normalize(phi - centre, dim=2)  # centred on the pair's distinct restarts: restarts look alike
        similarity = phi @ phi.transpose(1, 2)  # (P, R, R) cosine of the restarts' deviations from their centre
        spread = objective.std(dim=1, keepdim=True).clamp(min=1e-6)
        relevance = (objective - objective.mean(dim=1, keepdim=True)) / spread
        kept = [by_objective[:, 0]]
        closest = similarity[rows, kept[0]]  # (P, R) largest similarity to a kept restart
        taken = torch.zeros_like(objective, dtype=torch.bool)
        taken[rows, kept[0]] = True
        for _ in range(1, k):
            gain = relevance - self.settings.diverse_choice * closest
            # rounded: near-equal gains tie and the lower index wins, so float noise from another batching never
            # flips the choice (designs stay a function of the pair and the run date)
            gain = torch.round(gain * 1e3)
            gain = torch.where(copies, -1e9 - position.float(), gain).masked_fill(taken, float("-inf"))
            pick = gain.argmax(dim=1)
            kept.append(pick)
            taken[rows, pick] = True
            closest = torch.maximum(closest, similarity[rows, pick])
        return torch.stack(kept, dim=1)

    @staticmethod
    def _copies(images: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """(P, R) whether a restart's picture is a copy of a better one's (by objective `position`): their
        root-mean-square pixel difference is under COPY_TOLERANCE, one grey level of the published uint8 image."""
        rms = torch.cdist(images, images) / images.shape[-1] ** 0.5  # (P, R, R) pixels in [-1, 1]
        better = position[:, :, None] < position[:, None, :]  # [p, i, j]: restart i ranks above restart j
        return ((rms < COPY_TOLERANCE) & better).any(dim=1)

    def _add_judge(self, designs: dict[str, np.ndarray], pairs: dict[str, np.ndarray], images: torch.Tensor) -> None:
        """The held-out scorer's visual score of the kept designs and of the retrieved catalogue items (never optimised)."""
        assert self.judge is not None
        judge, phi, adapt = self.judge
        tensor = (lambda a: torch.from_numpy(np.asarray(a, np.int64)).to(self.device))  # noqa: E731
        with torch.no_grad():
            terms = judge.score_terms(tensor(designs["user_idx"]), tensor(designs["category_idx"]))
            designs["judge_score"] = visual_score(judge.encode_images(adapt(images)).float(), *terms) \
                .cpu().numpy().astype(np.float32)
            items = tensor(pairs["dataset_top_item_idx"])
            real = visual_score_matrix(phi[items.clamp(min=0)],
                                       *judge.score_terms(tensor(pairs["user_idx"]), tensor(pairs["category_idx"])))
            pairs["judge_dataset_top"] = torch.where(items >= 0, real, float("nan")).cpu().numpy().astype(np.float32)

    def _add_oracle(self, designs: dict[str, np.ndarray], pairs: dict[str, np.ndarray]) -> None:
        """True preference of the designs and of the retrieved catalogue items, and what a win is made of: each
        design's extrapolation and novelty, each pair's truly best real item and the diversity of its kept designs
        and of its retrieved items, in the oracle's attribute space (simulated catalogues only)."""
        assert self.oracle is not None
        n_pairs = len(pairs["pair_id"])
        z = self.oracle.image_z(designs["image"], designs["category_idx"])
        designs["oracle_score"] = np.asarray(self.oracle.preference_of_z(
            designs["user_idx"], z, designs["category_idx"]), dtype=np.float32).reshape(-1)
        designs["oracle_extrapolation"] = self.oracle.extrapolation(z, designs["category_idx"])
        designs["oracle_novelty"] = self.oracle.novelty(z, designs["category_idx"])
        pairs["oracle_best_generated"] = (designs["oracle_score"].reshape(n_pairs, self.top_k).max(axis=1)
                                          if n_pairs else np.zeros(0, np.float32))
        pairs["oracle_category_best"] = self.oracle.category_best(pairs["user_idx"], pairs["category_idx"])
        pairs["oracle_diversity"] = self.oracle.diversity(z.reshape(n_pairs, self.top_k, -1))
        items = pairs["dataset_top_item_idx"]
        truth = np.full(items.shape, np.nan, dtype=np.float32)
        real_diversity = np.full(n_pairs, np.nan, dtype=np.float32)
        for row, (user, top) in enumerate(zip(pairs["user_idx"], items)):
            valid = top >= 0
            if valid.any():
                truth[row, valid] = np.asarray(self.oracle.taste_logit(np.array([user]), top[valid])).reshape(-1)
                real_diversity[row] = self.oracle.diversity(self.oracle.item_z[top[valid]][None])[0]
        pairs["oracle_dataset_top"] = truth
        pairs["dataset_oracle_diversity"] = real_diversity
