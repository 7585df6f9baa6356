"""Preference maximisation: design images a user would like, for many (user, category) pairs at once.

For each pair (u, c), R latent codes are optimised with Adam for T steps to maximise

    objective(z) = θ_u · Φ(G(z, c)) − η · (D(G(z, c), c) − 1)²

as the official `PM/main.py` does (R=16, T=10, Adam lr 0.05, z0 ~ N(0, 0.5²), η=1, no tanh, the loss is the mean
over the R restarts). G's images are resized to the recommender's input size with nearest neighbour (the official
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
                     #   latent (n, latent_dim) float32, image (n, H, W, C) uint8 [, oracle_score]
    result.pairs     # one row per pair: pair_id, user_idx, category_idx, best_score, initial_best_score, lift,
                     #   dataset_top_item_idx (P, k), dataset_top_scores (P, k), steps_run
                     #   [, oracle_best_generated, oracle_dataset_top (P, k)]

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
from fashiongen.models.contract import ConditionalGenerator, Recommender, VisualRecommender

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # PIL's RGB -> "L" conversion


class EngineError(FashiongenError, ValueError):
    """Input the preference engine cannot optimise; the message names the pair or setting and the fix."""


class PreferenceOracle(Protocol):
    """What the engine needs of a simulated catalogue's ground truth (`fashiongen.data.oracle.GroundTruth`):
    `taste_logit` of catalogue items is `image_preference` of their images (no hidden popularity), so the
    designs and the retrieved items are judged on the same scale."""

    def taste_logit(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray: ...

    def image_preference(self, user_idx: np.ndarray, images: np.ndarray, category_idx: np.ndarray) -> np.ndarray: ...


def pair_seed(pair: str, run_date: str) -> int:
    """A 63-bit seed from (pair_id, run_date): the same pair on the same date always starts from the same z0."""
    digest = hashlib.blake2b(f"{run_date}\x1f{pair}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def initial_latents(pair: str, run_date: str, restarts: int, latent_dim: int, init_std: float) -> torch.Tensor:
    """z0 ~ N(0, init_std²), (restarts, latent_dim) float32 on CPU, fixed by (pair, run_date)."""
    gen = torch.Generator().manual_seed(pair_seed(pair, run_date))
    return torch.randn(restarts, latent_dim, generator=gen) * init_std


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
    """θ_u · Φ(G(z, c)) and D(G(z, c), c) for a batch of latents, shared by the engine and item redesign.
    Freezes both models (eval mode, no parameter gradients: BatchNorm uses its running statistics so samples stay
    independent, and backward computes gradients for the latents only)."""

    def __init__(self, recommender: Recommender, generator: ConditionalGenerator, settings: DesignConfig,
                 device: torch.device | str = "cpu"):
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
        self.adapt = image_adapter(tuple(generator.image_shape), tuple(recommender.image_shape))
        self._forward = torch.compile(self._forward_eager) if settings.compile else self._forward_eager

    @property
    def latent_dim(self) -> int:
        return int(self.generator.latent_dim)

    def _forward_eager(self, z: torch.Tensor, theta_rows: torch.Tensor, categories: torch.Tensor):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.settings.mixed_precision):
            images = self.generator.generate(z, categories)
            phi = self.recommender.encode_images(self.adapt(images))
            realism = self.generator.discriminate(images, categories)
        score = (theta_rows * phi.float()).sum(dim=1)
        return images.float(), score, realism.float().reshape(-1)

    def __call__(self, z: torch.Tensor, users: torch.Tensor, categories: torch.Tensor):
        """Latents (n, L), user and category indices (n,) -> images (n, C, H, W), score, realism, objective."""
        images, score, realism = self._forward(z, self.theta[users], categories)
        objective = score - self.settings.eta * (realism - 1.0) ** 2
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
                 oracle: PreferenceOracle | None = None):
        if settings.restarts < 1 or settings.steps < 0 or settings.top_k < 1 or settings.batch_pairs < 1:
            raise EngineError("design.restarts, top_k and batch_pairs must be >= 1 and design.steps >= 0 "
                              f"(got {settings.restarts}, {settings.top_k}, {settings.batch_pairs}, {settings.steps})")
        self.settings = settings
        self.objective = DesignObjective(recommender, generator, settings, device)
        self.device = self.objective.device
        self.categories = list(generator.categories)
        self.oracle = oracle
        self.item_features = recommender.item_features().detach().to(self.device, torch.float32)
        self.item_category = np.asarray(item_category, dtype=np.int64)
        if self.item_category.shape != (len(self.item_features),):
            raise EngineError(f"item_category has shape {self.item_category.shape} but the recommender has "
                              f"{len(self.item_features)} items: pass the catalogue the recommender was trained on")
        self._item_category_t = torch.from_numpy(self.item_category).to(self.device)
        self.top_k = min(settings.top_k, settings.restarts)

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
        users = torch.from_numpy(np.asarray(user_idx, dtype=np.int64)).to(self.device)
        cats = torch.from_numpy(np.asarray(category_idx, dtype=np.int64)).to(self.device)
        scores = self.objective.theta[users] @ self.item_features.T
        scores = scores.masked_fill(self._item_category_t[None, :] != cats[:, None], float("-inf"))
        k = min(self.top_k, scores.shape[1])
        top_scores, top_idx = torch.topk(scores, k, dim=1)
        top_idx = torch.where(torch.isinf(top_scores), torch.full_like(top_idx, -1), top_idx)
        top_scores = torch.where(torch.isinf(top_scores), torch.full_like(top_scores, float("nan")), top_scores)
        pad = self.top_k - k
        idx, sc = top_idx.cpu().numpy(), top_scores.cpu().numpy()
        if pad:
            idx = np.pad(idx, ((0, 0), (0, pad)), constant_values=-1)
            sc = np.pad(sc, ((0, 0), (0, pad)), constant_values=np.nan)
        return idx, sc.astype(np.float32)

    # ------------------------------------------------------------------ internals
    def _latent(self, w: torch.Tensor) -> torch.Tensor:
        return torch.tanh(w) if self.settings.bounded_latent else w

    def _optimise_chunk(self, pair_ids: list[str], user_idx: np.ndarray, category_idx: np.ndarray, run_date: str,
                        trajectory: bool) -> EngineResult:
        s, n_pairs, n_restarts, k = self.settings, len(pair_ids), self.settings.restarts, self.top_k
        latent_dim = self.objective.latent_dim
        z0 = torch.stack([initial_latents(p, run_date, n_restarts, latent_dim, s.init_std) for p in pair_ids]) \
            if n_pairs else torch.zeros(0, n_restarts, latent_dim)
        z0 = z0.reshape(n_pairs * n_restarts, latent_dim).to(self.device)
        w0 = torch.atanh(z0.clamp(-0.999, 0.999)) if s.bounded_latent else z0
        w = w0.clone().requires_grad_(True)
        users = torch.from_numpy(user_idx).to(self.device).repeat_interleave(n_restarts)
        cats = torch.from_numpy(category_idx).to(self.device).repeat_interleave(n_restarts)
        optimiser = torch.optim.Adam([w], lr=s.lr)
        active = torch.ones(n_pairs, dtype=torch.bool, device=self.device)
        steps_run = torch.zeros(n_pairs, dtype=torch.int64, device=self.device)
        previous: torch.Tensor | None = None
        initial_best = None
        traj: dict[str, list] = {"image": [], "score": [], "objective": []}

        def record(images, score, objective) -> None:
            if trajectory:
                traj["image"].append(to_uint8_nhwc(images).reshape(n_pairs, n_restarts, *images.shape[2:], images.shape[1]))
                traj["score"].append(score.detach().reshape(n_pairs, n_restarts).cpu().numpy())
                traj["objective"].append(objective.detach().reshape(n_pairs, n_restarts).cpu().numpy())

        for _ in range(s.steps if n_pairs else 0):
            images, score, _realism, objective = self.objective(self._latent(w), users, cats)
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
            steps_run += active.long()

        with torch.no_grad():
            z = self._latent(w.detach())
            images, score, realism, objective = self.objective(z, users, cats)
        record(images, score, objective)
        if initial_best is None:
            initial_best = score.reshape(n_pairs, n_restarts).max(dim=1).values

        order = torch.argsort(-objective.reshape(n_pairs, n_restarts), dim=1, stable=True)[:, :k]
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
            "image": top_images,
        }
        data_idx, data_scores = self.dataset_top(user_idx, category_idx)
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
        if self.oracle is not None:
            self._add_oracle(designs, pairs)
        out_traj = None
        if trajectory:
            out_traj = {name: np.stack(vals, axis=1) if vals else np.zeros((n_pairs, 0, n_restarts))
                        for name, vals in traj.items()}
            steps_taken = len(traj["score"]) - 1
            out_traj["step"] = np.tile(np.arange(steps_taken + 1), (n_pairs, 1))
        return EngineResult(designs=designs, pairs=pairs, trajectory=out_traj)

    def _add_oracle(self, designs: dict[str, np.ndarray], pairs: dict[str, np.ndarray]) -> None:
        """True preference of the designs and of the retrieved catalogue items (simulated catalogues only)."""
        assert self.oracle is not None
        n_pairs = len(pairs["pair_id"])
        designs["oracle_score"] = np.asarray(self.oracle.image_preference(
            designs["user_idx"], designs["image"], designs["category_idx"]), dtype=np.float32).reshape(-1)
        pairs["oracle_best_generated"] = (designs["oracle_score"].reshape(n_pairs, self.top_k).max(axis=1)
                                          if n_pairs else np.zeros(0, np.float32))
        truth = np.full(pairs["dataset_top_item_idx"].shape, np.nan, dtype=np.float32)
        for row, (user, items) in enumerate(zip(pairs["user_idx"], pairs["dataset_top_item_idx"])):
            valid = items >= 0
            if valid.any():
                truth[row, valid] = np.asarray(self.oracle.taste_logit(np.array([user]), items[valid])).reshape(-1)
        pairs["oracle_dataset_top"] = truth
