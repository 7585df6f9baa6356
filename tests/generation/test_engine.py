"""The preference engine against the model contracts, with tiny torch models defined here."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from fashiongen.config import DesignConfig
from fashiongen.generation.engine import (EngineError, PreferenceEngine, category_mapping, image_adapter,
                                          initial_latents)
from fashiongen.lake.layout import make_pair_id
from fashiongen.models.contract import ConditionalGenerator, VisualRecommender, register_recommender
from fixtures import REPO

torch.set_num_threads(1)


@register_recommender
class TinyVisualRecommender(VisualRecommender):
    """θ_u · Φ(x) with Φ a conv + linear encoder; `image_shape` is its input (C, H, W); `catalogue` its item images."""

    kind = "tiny_visual"

    def __init__(self, num_users: int = 6, k: int = 5, image_shape=(1, 8, 8), catalogue: torch.Tensor | None = None,
                 seed: int = 0):
        torch.manual_seed(seed)
        c, h, w = image_shape
        self.image_shape = tuple(image_shape)
        self.encoder = nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Tanh(), nn.Flatten(),
                                     nn.Linear(4 * h * w, k)).eval()
        self.theta = torch.randn(num_users, k)
        self.catalogue = catalogue if catalogue is not None else torch.rand(10, c, h, w) * 2 - 1

    @classmethod
    def from_config(cls, rec):
        return cls(k=rec.k, seed=rec.seed)

    def fit(self, catalogue, on_epoch=None) -> list[dict]:
        return []

    def to(self, device):
        self.encoder.to(device)
        self.theta, self.catalogue = self.theta.to(device), self.catalogue.to(device)
        return self

    def freeze(self) -> None:
        self.encoder.eval().requires_grad_(False)

    def score(self, users, items=None):
        return self.theta[torch.as_tensor(users)] @ self.item_features().T

    def user_vectors(self) -> torch.Tensor:
        return self.theta

    @torch.no_grad()
    def item_features(self) -> torch.Tensor:
        return self.encoder(self.catalogue)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def checkpoint_payload(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": {"num_users": len(self.theta), "k": self.theta.shape[1],
                                              "image_shape": list(self.image_shape)},
                "state": {"encoder": self.encoder.state_dict(), "theta": self.theta, "catalogue": self.catalogue},
                "meta": {}}

    @classmethod
    def from_payload(cls, payload):
        cfg, state = payload["config"], payload["state"]
        model = cls(cfg["num_users"], cfg["k"], tuple(cfg["image_shape"]), state["catalogue"])
        model.encoder.load_state_dict(state["encoder"])
        model.theta = state["theta"]
        return model


class TinyGenerator(ConditionalGenerator):
    """G: (z, onehot c) -> linear -> BN -> tanh images; D: linear on flattened image + category embedding."""

    kind = "tiny_gan"

    def __init__(self, latent_dim: int = 4, categories=("tops", "shoes", "bags"), image_shape=(1, 8, 8), seed: int = 0):
        torch.manual_seed(seed)
        self.latent_dim, self.categories, self.image_shape = latent_dim, list(categories), tuple(image_shape)
        n = int(np.prod(image_shape))
        self.g = nn.Sequential(nn.Linear(latent_dim + len(categories), n), nn.BatchNorm1d(n)).eval()
        self.d = nn.Linear(n, 1).eval()
        self.d_cat = nn.Embedding(len(categories), 1).eval()
        for p in [*self.g.parameters(), *self.d.parameters(), *self.d_cat.parameters()]:
            p.requires_grad_(False)
        with torch.no_grad():  # non-trivial running statistics: eval-mode BN must use them
            self.g[1].running_mean.uniform_(-0.2, 0.2)
            self.g[1].running_var.uniform_(0.5, 1.5)

    def generate(self, z, c):
        onehot = torch.nn.functional.one_hot(c, len(self.categories)).to(z.dtype)
        return torch.tanh(self.g(torch.cat([z, onehot], dim=1))).reshape(-1, *self.image_shape)

    def discriminate(self, x, c):
        return self.d(x.flatten(1)).squeeze(1) + self.d_cat(c).squeeze(1)

    def to(self, device):
        for m in (self.g, self.d, self.d_cat):
            m.to(device)
        return self

    def freeze(self) -> None:
        for m in (self.g, self.d, self.d_cat):
            m.eval().requires_grad_(False)

    def checkpoint_payload(self):
        return {"kind": self.kind, "config": {}, "state": {}, "meta": {}}

    @classmethod
    def from_payload(cls, payload):
        return cls()


ITEM_CATEGORY = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
RUN_DATE = "2024-05-01"


def make_engine(**overrides) -> PreferenceEngine:
    settings = DesignConfig.official(**{"restarts": 5, "steps": 6, "top_k": 3, **overrides})
    return PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), settings, ITEM_CATEGORY)


def pairs(n: int = 6):
    users = np.arange(n) % 6
    cats = np.arange(n) % 3
    return [make_pair_id(f"u{u}", f"c{c}") + f"#{i}" for i, (u, c) in enumerate(zip(users, cats))], users, cats


@pytest.mark.parametrize("diverse_choice", [0.0, 2.0])
def test_pair_is_deterministic_whatever_batch_it_lands_in(diverse_choice):
    ids, users, cats = pairs(6)
    whole = make_engine(batch_pairs=64, diverse_choice=diverse_choice).optimise(ids, users, cats, RUN_DATE)
    split = make_engine(batch_pairs=2, diverse_choice=diverse_choice).optimise(ids, users, cats, RUN_DATE)
    # pair 3 alone and in a different batch position
    alone = make_engine(diverse_choice=diverse_choice).optimise(ids[3:4], users[3:4], cats[3:4], RUN_DATE)
    np.testing.assert_allclose(whole.designs["latent"], split.designs["latent"], atol=1e-5)
    np.testing.assert_allclose(whole.designs["score"], split.designs["score"], atol=1e-5)
    np.testing.assert_allclose(whole.designs["latent"][9:12], alone.designs["latent"], atol=1e-5)
    assert list(whole.designs["pair_id"][9:12]) == [ids[3]] * 3
    other_day = make_engine(diverse_choice=diverse_choice).optimise(ids[3:4], users[3:4], cats[3:4], "2024-05-02")
    assert not np.allclose(other_day.designs["latent"], alone.designs["latent"])


def test_first_step_matches_official_single_user_procedure():
    """One Adam step of the engine equals the official loop for one user: obj = mean_R(...), Adam(lr) on z."""
    engine = make_engine(steps=1, restarts=4, top_k=4)
    ids, users, cats = pairs(3)
    result = engine.optimise(ids, users, cats, RUN_DATE)
    obj = engine.objective
    z = initial_latents(ids[1], RUN_DATE, 4, 4, 0.5).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.05)
    u, c = torch.full((4,), users[1]), torch.full((4,), cats[1])
    _, _, _, objective = obj(z, u, c)
    (-objective.mean()).backward()
    opt.step()
    got = result.designs["latent"][result.designs["pair_id"] == ids[1]]
    expected = z.detach().numpy()
    for row in got:  # the engine reorders restarts by rank
        assert np.abs(expected - row).max(axis=1).min() < 1e-5


def test_objective_rises_over_the_steps():
    ids, users, cats = pairs(6)
    result = make_engine(steps=10).optimise(ids, users, cats, RUN_DATE, trajectory=True)
    mean_objective = result.trajectory["objective"].mean(axis=(0, 2))
    assert mean_objective.shape == (11,)
    assert mean_objective[-1] > mean_objective[0] + 0.1
    assert (np.diff(mean_objective) > -1e-4).sum() >= 8
    per_pair = result.trajectory["objective"].mean(axis=2)
    assert (per_pair[:, -1] > per_pair[:, 0]).all()
    assert result.trajectory["image"].shape == (6, 11, 5, 8, 8, 1)


def test_top_k_is_ordered_by_objective_and_dataset_top_is_brute_force_best():
    engine = make_engine()
    ids, users, cats = pairs(6)
    res = engine.optimise(ids, users, cats, RUN_DATE)
    objective = res.designs["objective"].reshape(6, 3)
    assert (np.diff(objective, axis=1) <= 0).all()
    assert (res.designs["rank"].reshape(6, 3) == np.arange(3)).all()
    assert res.designs["image"].dtype == np.uint8 and res.designs["image"].shape == (18, 8, 8, 1)
    rec = engine.objective.recommender
    scores = (rec.theta @ rec.item_features().T).numpy()
    for row, (u, c) in enumerate(zip(users, cats)):
        members = np.flatnonzero(ITEM_CATEGORY == c)
        best = members[np.argsort(-scores[u, members])][:3]
        np.testing.assert_array_equal(res.pairs["dataset_top_item_idx"][row], best)
        np.testing.assert_allclose(res.pairs["dataset_top_scores"][row], scores[u, best], rtol=1e-5)
    np.testing.assert_allclose(res.pairs["lift"],
                               res.designs["score"].reshape(6, 3).max(1) - res.pairs["dataset_top_scores"][:, 0],
                               rtol=1e-5)


def test_small_category_is_padded():
    settings = DesignConfig.official(restarts=4, steps=1, top_k=3)
    engine = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), settings,
                              np.array([0, 0, 0, 0, 1, 0, 0, 0, 0, 0]))
    res = engine.optimise(["a"], np.array([0]), np.array([1]), RUN_DATE)
    assert res.pairs["dataset_top_item_idx"][0].tolist() == [4, -1, -1]
    assert np.isnan(res.pairs["dataset_top_scores"][0, 1:]).all()


class FakeOracle:
    """One attribute, the mean pixel; taste = attribute + user; the truly best item scores 10 u + 99."""

    item_z = np.arange(len(ITEM_CATEGORY), dtype=np.float32)[:, None]

    def image_z(self, images, category_idx):
        return images.reshape(len(images), -1).mean(axis=1, keepdims=True) / 255.0

    def preference_of_z(self, user_idx, z, category_idx):
        return z[:, 0] + user_idx

    def extrapolation(self, z, category_idx):
        return np.maximum(z[:, 0] - 0.5, 0.0)

    def novelty(self, z, category_idx):
        return np.abs(z[:, 0])

    def category_best(self, user_idx, category_idx):
        return np.asarray(user_idx) * 10.0 + 99

    def diversity(self, z):
        return np.abs(z[:, 0, 0] - z[:, 1, 0]) if z.shape[1] == 2 else np.full(len(z), np.nan)

    def taste_logit(self, user_idx, item_idx):
        return np.asarray(user_idx)[:, None] * 10.0 + np.asarray(item_idx)[None, :]


def test_oracle_scores_designs_and_retrieved_items():
    settings = DesignConfig.official(restarts=4, steps=2, top_k=2)
    engine = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), settings, ITEM_CATEGORY, oracle=FakeOracle())
    ids, users, cats = pairs(4)
    res = engine.optimise(ids, users, cats, RUN_DATE)
    assert res.designs["oracle_score"].shape == (8,)
    expected = users[:, None] * 10.0 + res.pairs["dataset_top_item_idx"]
    np.testing.assert_allclose(res.pairs["oracle_dataset_top"], expected)
    np.testing.assert_allclose(res.pairs["oracle_best_generated"], res.designs["oracle_score"].reshape(4, 2).max(1))
    mean_pixel = res.designs["image"].reshape(8, -1).mean(axis=1) / 255.0
    np.testing.assert_allclose(res.designs["oracle_score"], mean_pixel + res.designs["user_idx"], rtol=1e-6)
    np.testing.assert_allclose(res.designs["oracle_extrapolation"], np.maximum(mean_pixel - 0.5, 0), rtol=1e-6)
    np.testing.assert_allclose(res.designs["oracle_novelty"], mean_pixel, rtol=1e-6)
    np.testing.assert_allclose(res.pairs["oracle_category_best"], users * 10.0 + 99)
    kept = mean_pixel.reshape(4, 2)
    np.testing.assert_allclose(res.pairs["oracle_diversity"], np.abs(kept[:, 0] - kept[:, 1]), rtol=1e-5)
    top = res.pairs["dataset_top_item_idx"].astype(np.float64)
    real = np.array([np.abs(row[0] - row[1]) if (row >= 0).all() else np.nan for row in top])
    np.testing.assert_allclose(res.pairs["dataset_oracle_diversity"], real, rtol=1e-5)


def test_options_bounded_latent_mixed_precision_early_stopping():
    ids, users, cats = pairs(4)
    bounded = make_engine(bounded_latent=True, steps=4).optimise(ids, users, cats, RUN_DATE)
    assert np.abs(bounded.designs["latent"]).max() < 1.0
    bf16 = make_engine(mixed_precision=True).optimise(ids, users, cats, RUN_DATE)
    assert bf16.designs["latent"].dtype == np.float32 and np.isfinite(bf16.designs["score"]).all()
    early = make_engine(early_stopping=True, early_stop_tol=1e9, steps=8).optimise(ids, users, cats, RUN_DATE)
    assert (early.pairs["steps_run"] == 1).all()  # improvement < tol after the first step: every pair stops
    full = make_engine(steps=8).optimise(ids, users, cats, RUN_DATE)
    assert (full.pairs["steps_run"] == 8).all()


def test_empty_input_gives_empty_tables():
    res = make_engine().optimise([], np.array([], dtype=np.int64), np.array([], dtype=np.int64), RUN_DATE)
    assert len(res.designs["pair_id"]) == 0 and res.designs["latent"].shape == (0, 4)
    assert res.pairs["dataset_top_item_idx"].shape == (0, 3)


def test_bad_input_is_a_clear_error():
    engine = make_engine()
    with pytest.raises(EngineError, match="unknown user index 99"):
        engine.optimise(["p"], np.array([99]), np.array([0]), RUN_DATE)
    with pytest.raises(EngineError, match="category index 7 is not one the generator knows"):
        engine.optimise(["p"], np.array([0]), np.array([7]), RUN_DATE)
    with pytest.raises(EngineError, match="YYYY-MM-DD"):
        engine.optimise(["p"], np.array([0]), np.array([0]), "yesterday")
    engine.objective.theta[2, 1] = float("nan")
    with pytest.raises(EngineError, match="user 2's preference vector is not finite"):
        engine.optimise(["a", "b"], np.array([0, 2]), np.array([0, 0]), RUN_DATE)
    with pytest.raises(EngineError, match="item_category"):
        PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), DesignConfig.official(), ITEM_CATEGORY[:3])


def test_resize_and_channel_adaptation():
    adapt = image_adapter((3, 4, 4), (1, 8, 8))
    x = torch.zeros(1, 3, 4, 4)
    x[0, 1] = 1.0
    y = adapt(x)
    assert y.shape == (1, 1, 8, 8)
    assert torch.allclose(y, torch.full_like(y, 0.587))
    ramp = torch.arange(4.0).reshape(1, 1, 1, 4).expand(1, 1, 4, 4)
    assert image_adapter((1, 4, 4), (3, 8, 8))(ramp)[0, 2, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    with pytest.raises(EngineError, match="channel"):
        image_adapter((2, 4, 4), (3, 4, 4))
    # a generator at 4x4 RGB driving an 8x8 grey recommender end to end
    settings = DesignConfig.official(restarts=3, steps=2, top_k=1)
    engine = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(image_shape=(3, 4, 4)), settings, ITEM_CATEGORY)
    res = engine.optimise(["p"], np.array([1]), np.array([2]), RUN_DATE)
    assert res.designs["image"].shape == (1, 4, 4, 3)


def test_engine_freezes_its_models():
    generator = TinyGenerator()
    generator.g.train().requires_grad_(True)
    make = PreferenceEngine(TinyVisualRecommender(), generator, DesignConfig.official(steps=1), ITEM_CATEGORY)
    assert not generator.g.training and not any(p.requires_grad for p in generator.g.parameters())
    assert make.objective.recommender.encoder.training is False


def test_category_mapping():
    assert category_mapping(["shoes", "hats", "tops"], ["tops", "shoes"]).tolist() == [1, -1, 0]


GPU_BOX_LACKS = ["ray", "s3fs", "fsspec", "boto3", "botocore", "aiobotocore", "pandas", "moto"]
SMOKE_RUN = """
import json, runpy, sys
bench = runpy.run_path(sys.argv[1], run_name="engine_gpu_bench")
code = bench["main"](["--smoke", "--device", "cpu", "--batches", "4", "--compile-backend", "aot_eager"])
print("IMPORTED", json.dumps(sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[2:]))))
sys.exit(code)
"""


def test_gpu_benchmark_smoke_mode_runs_on_cpu_and_never_imports_ray():
    """bench/engine_gpu.py --smoke runs the project's DVBPR, LSGAN and engine on a CPU, in a fresh process that
    imports none of Ray, s3fs, boto3 or pandas: a GPU box needs only torch, numpy, pyarrow, pyyaml and pillow."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", SMOKE_RUN, str(REPO / "bench" / "engine_gpu.py"), *GPU_BOX_LACKS],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert json.loads(next(line for line in lines if line.startswith("IMPORTED "))[len("IMPORTED "):]) == []
    assert any(line.startswith("paper-scale scene builds: DVBPR cnnf (3, 224, 224)") for line in lines)
    rows = [line.split() for line in lines if line.strip().startswith("4 ")]
    assert {(r[2], r[3]) for r in rows} == {("fp32", "eager"), ("fp32", "aot_eager"), ("bf16", "eager"),
                                            ("bf16", "aot_eager")}
    assert all(float(r[5]) > 0 and float(r[6]) > 0 for r in rows)  # pairs/s and GFLOP/step


def test_integration_with_the_real_dvbpr_and_lsgan():
    """The project's small DVBPR (28x28 grey) driven by the small LSGAN at 16x16: nearest resize in between."""
    from fashiongen.models.dvbpr import DVBPR
    from fashiongen.models.gan import ConditionalGAN

    torch.manual_seed(0)
    recommender = DVBPR(k=8, arch="small").build(4, 12, (1, 28, 28))
    recommender.index_catalogue(np.random.default_rng(0).integers(0, 255, (12, 28, 28, 1), dtype=np.uint8))
    generator = ConditionalGAN("small", 8, ["a", "b"], (1, 16, 16))
    generator.generator.train()  # the engine must put BatchNorm in eval mode itself
    settings = DesignConfig.official(restarts=4, steps=5, top_k=2, lr=0.1)
    item_category = np.arange(12) % 2
    ids, users, cats = ["p0", "p1", "p2"], np.array([0, 1, 3]), np.array([0, 1, 1])
    engine = PreferenceEngine(recommender, generator, settings, item_category)
    result = engine.optimise(ids, users, cats, RUN_DATE, trajectory=True)
    objective = result.trajectory["objective"].mean(axis=2)
    assert (objective[:, -1] > objective[:, 0]).all()
    assert result.designs["image"].shape == (6, 16, 16, 1)
    one = PreferenceEngine(recommender, generator, DesignConfig.official(restarts=4, steps=5, top_k=2, lr=0.1,
                                                                    batch_pairs=1), item_category)
    np.testing.assert_allclose(one.optimise(ids, users, cats, RUN_DATE).designs["latent"], result.designs["latent"],
                               atol=1e-5)
    scores = recommender.score(users).numpy()
    for row, (u, c) in enumerate(zip(users, cats)):
        members = np.flatnonzero(item_category == c)
        assert result.pairs["dataset_top_item_idx"][row].tolist() == members[np.argsort(-scores[row, members])][:2].tolist()


def test_designs_climb_the_pairs_design_vectors_and_real_items_share_their_scale(shared_catalogue):
    """DVBPR with profile users: the pair's visual score depends on the category (v·Φ + b); designs, the catalogue's
    top items and the held-out judge all use it, so a design and a real item are compared on one scale."""
    from fashiongen.data.contract import load_catalogue
    from fashiongen.evaluation.taste import visual_scores
    from fashiongen.models.dvbpr import DVBPR
    from fashiongen.models.gan import ConditionalGAN

    catalogue = load_catalogue(shared_catalogue())
    torch.manual_seed(0)
    recommender = DVBPR(k=8, epochs=1, batch_size=16, user_model="profile")
    recommender.fit(catalogue)
    judge = DVBPR(k=8, epochs=1, batch_size=16, seed=1, user_model="profile")
    judge.fit(catalogue)
    generator = ConditionalGAN("small", 8, list(catalogue.categories), (1, 16, 16))
    engine = PreferenceEngine(recommender, generator, DesignConfig.official(restarts=3, steps=4, top_k=2),
                              catalogue.item_category, judge=judge)
    users, cats = np.array([0, 1, 2, 2]), np.array([0, 1, 0, 1])
    result = engine.optimise(["a", "b", "c", "d"], users, cats, RUN_DATE)
    for scorer, top in ((recommender, "dataset_top_scores"), (judge, "judge_dataset_top")):
        visual = visual_scores(scorer, catalogue.item_category)(users)
        for row, (u, c) in enumerate(zip(users, cats)):
            idx = result.pairs["dataset_top_item_idx"][row]
            np.testing.assert_allclose(result.pairs[top][row], visual[row, idx], rtol=1e-4, atol=1e-5)
            if scorer is recommender:
                members = np.flatnonzero(catalogue.item_category == c)
                assert idx.tolist() == members[np.argsort(-visual[row, members])][:2].tolist()
    z = torch.from_numpy(result.designs["latent"])
    u_t, c_t = (torch.from_numpy(result.designs[k]) for k in ("user_idx", "category_idx"))
    with torch.no_grad():
        phi = recommender.encode_images(engine.objective.adapt(generator.generate(z, c_t)))
        v, b = recommender.design_vectors(u_t, c_t)
        np.testing.assert_allclose(result.designs["score"], ((v * phi).sum(1) + b).numpy(), rtol=1e-4, atol=1e-5)
        theta_only = (recommender.user_vectors()[u_t] * phi).sum(1).numpy()
    assert not np.allclose(result.designs["score"], theta_only, atol=1e-3)  # the category's scaling matters

# ---------------------------------------------------------------------------------------- design recipes and judges

GOLDEN = REPO / "tests" / "generation" / "official_designs.npz"  # written by the engine before recipes existed


def test_official_preset_reproduces_the_designs_before_recipes_existed():
    from fashiongen.config import PRESETS, from_dict

    settings = from_dict(DesignConfig, PRESETS["design"]["official"])
    engine = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), settings, ITEM_CATEGORY)
    result = engine.optimise([f"p{i}" for i in range(6)], np.arange(6), np.array([0, 1, 2, 0, 1, 2]), RUN_DATE)
    golden = np.load(GOLDEN)
    for name in golden.files:
        part, key = name.split("_", 1)
        got = getattr(result, part)[key]
        if got.dtype.kind in "iu":
            np.testing.assert_array_equal(got, golden[name], err_msg=name)
        else:
            np.testing.assert_allclose(got, golden[name], rtol=1e-6, atol=1e-6, err_msg=name)


def catalogue_images(n: int = 10) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 255, (n, 8, 8, 1), dtype=np.uint8)


def test_warm_start_begins_at_the_inverted_top_real_items():
    from fashiongen.generation.invert import invert_images

    settings = DesignConfig.official(restarts=4, steps=0, top_k=2, warm_start=2, invert_steps=20, invert_restarts=2)
    generator, images = TinyGenerator(), catalogue_images()
    engine = PreferenceEngine(TinyVisualRecommender(), generator, settings, ITEM_CATEGORY, item_images=images)
    ids, users, cats = pairs(3)
    result = engine.optimise(ids, users, cats, RUN_DATE)
    top = result.pairs["dataset_top_item_idx"]
    source = result.designs["source_item_idx"].reshape(3, 2)
    latents = result.designs["latent"].reshape(3, 2, -1)
    for p in range(3):
        for r in range(2):
            if source[p, r] >= 0:  # a warm start kept among the best: it is exactly the item's inversion
                assert source[p, r] in top[p]
                item = int(source[p, r])
                fit = invert_images(generator, images[item:item + 1], ITEM_CATEGORY[item:item + 1], settings,
                                    seed=np.array([item + 1]))
                np.testing.assert_allclose(latents[p, r], fit.latent[0], atol=1e-5)
    assert (source >= 0).any()
    with pytest.raises(EngineError, match="item_images"):
        PreferenceEngine(TinyVisualRecommender(), generator, settings, ITEM_CATEGORY)


def test_from_items_redesigns_each_top_item_and_proximity_holds_it():
    settings = DesignConfig.official(mode="from_items", steps=5, top_k=2, lr=0.2, invert_steps=10, invert_restarts=1)
    images = catalogue_images()
    ids, users, cats = pairs(3)
    free = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), dataclasses.replace(settings, proximity=0.0),
                            ITEM_CATEGORY, item_images=images).optimise(ids, users, cats, RUN_DATE)
    held = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), dataclasses.replace(settings, proximity=1e4),
                            ITEM_CATEGORY, item_images=images).optimise(ids, users, cats, RUN_DATE)
    for result in (free, held):
        assert result.designs["latent"].shape[0] == 3 * 2
        source = result.designs["source_item_idx"].reshape(3, 2)
        assert all(sorted(source[p]) == sorted(result.pairs["dataset_top_item_idx"][p]) for p in range(3))
    anchor = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), dataclasses.replace(settings, steps=0),
                              ITEM_CATEGORY, item_images=images).optimise(ids, users, cats, RUN_DATE)

    def moved(result):
        order = np.argsort(result.designs["source_item_idx"].reshape(3, 2), axis=1)
        base = np.argsort(anchor.designs["source_item_idx"].reshape(3, 2), axis=1)
        z = np.take_along_axis(result.designs["latent"].reshape(3, 2, -1), order[..., None], 1)
        z0 = np.take_along_axis(anchor.designs["latent"].reshape(3, 2, -1), base[..., None], 1)
        return np.linalg.norm(z - z0, axis=2).mean()

    assert moved(held) < 0.5 * moved(free)


def test_user_spread_eta_scales_the_realism_penalty_per_pair():
    ids, users, cats = pairs(4)
    base = make_engine(steps=0, eta=2.0, restarts=3).optimise(ids, users, cats, RUN_DATE)
    engine = make_engine(steps=0, eta=2.0, restarts=3, eta_scale="user_spread")
    scaled = engine.optimise(ids, users, cats, RUN_DATE)
    _, _, spread = engine._catalogue_view(users, cats)
    # Same z0, ranked differently: match each scaled design to its base row by latent.
    match = [int(np.flatnonzero((base.designs["latent"] == z).all(1))[0]) for z in scaled.designs["latent"]]
    penalty = (base.designs["score"] - base.designs["objective"])[match] / 2.0  # (D - 1)^2
    expected = scaled.designs["score"] - 2.0 * np.repeat(spread.numpy(), 3) * penalty
    np.testing.assert_allclose(scaled.designs["objective"], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(spread.numpy(), 1.0)


def test_held_out_judge_scores_designs_but_never_steers_them():
    ids, users, cats = pairs(4)
    settings = DesignConfig.official(restarts=4, steps=5, top_k=2, lr=0.1)
    plain = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), settings, ITEM_CATEGORY).optimise(
        ids, users, cats, RUN_DATE)
    judge = TinyVisualRecommender(seed=7)
    judged = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), settings, ITEM_CATEGORY,
                              judge=judge).optimise(ids, users, cats, RUN_DATE)
    # The latents do not depend on the judge: an engine that climbed it (a swap) would move them.
    np.testing.assert_array_equal(judged.designs["latent"], plain.designs["latent"])
    with torch.no_grad():
        x = torch.from_numpy(judged.designs["image"]).permute(0, 3, 1, 2).float() / 127.5 - 1
        expected = (judge.encode_images(x) * judge.theta[torch.from_numpy(judged.designs["user_idx"])]).sum(1)
        np.testing.assert_allclose(judged.designs["judge_score"], expected.numpy(), atol=0.05)
        real = judge.score(users).numpy()
    top = judged.pairs["dataset_top_item_idx"]
    np.testing.assert_allclose(judged.pairs["judge_dataset_top"], np.take_along_axis(real, top, 1), rtol=1e-5)
    swapped = PreferenceEngine(judge, TinyGenerator(), settings, ITEM_CATEGORY).optimise(ids, users, cats, RUN_DATE)
    assert not np.allclose(swapped.designs["latent"], judged.designs["latent"])
    with pytest.raises(EngineError, match="knows"):
        PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), settings, ITEM_CATEGORY,
                         judge=TinyVisualRecommender(num_users=3))


def test_recipe_settings_are_checked_with_a_one_line_error():
    from fashiongen.config import ConfigError, load_config

    for override, key in (("design.steps=-1", "design.steps"), ("design.eta=-0.5", "design.eta"),
                          ("design.mode=dream", "design.mode"), ("design.eta_scale=huge", "design.eta_scale"),
                          ("design.warm_start=-2", "design.warm_start")):
        with pytest.raises(ConfigError, match=key) as info:
            load_config(overrides=[override])
        assert "\n" not in str(info.value)


def test_category_guard_adds_the_guard_log_probability_and_needs_a_guard():
    from fashiongen.models.classifier import CategoryClassifier

    torch.manual_seed(0)
    guard = CategoryClassifier(1, 3, 8).eval()
    ids, users, cats = pairs(3)
    base = make_engine(steps=0, restarts=3).optimise(ids, users, cats, RUN_DATE)
    guarded = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), DesignConfig.official(restarts=3, steps=0, top_k=3,
                               category_guard=2.0), ITEM_CATEGORY, guard=guard, guard_class=np.array([2, 0, 1]))
    result = guarded.optimise(ids, users, cats, RUN_DATE)
    match = [int(np.flatnonzero((base.designs["latent"] == z).all(1))[0]) for z in result.designs["latent"]]
    with torch.no_grad():
        x = torch.from_numpy(result.designs["image"]).permute(0, 3, 1, 2).float() / 127.5 - 1
        log_p = torch.log_softmax(guard(x), 1).numpy()
    wanted = np.array([2, 0, 1])[result.designs["category_idx"]]
    expected = base.designs["objective"][match] + 2.0 * log_p[np.arange(len(wanted)), wanted]
    np.testing.assert_allclose(result.designs["objective"], expected, atol=0.05)  # images are rounded to uint8
    with pytest.raises(EngineError, match="guard"):
        PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), DesignConfig.official(category_guard=1.0), ITEM_CATEGORY)


def test_default_recipe_beats_the_official_preset_on_the_learned_scorer():
    from fashiongen.models.classifier import CategoryClassifier

    torch.manual_seed(0)
    guard = CategoryClassifier(1, 3, 8).eval()
    ids, users, cats = pairs(6)
    official = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), DesignConfig.official(),
                                ITEM_CATEGORY).optimise(ids, users, cats, RUN_DATE)
    default = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), DesignConfig(), ITEM_CATEGORY, guard=guard,
                               guard_class=np.arange(3)).optimise(ids, users, cats, RUN_DATE)

    def official_objective(result):  # the paper's objective of each pair's best design, whatever recipe made it
        value = result.designs["score"] - (result.designs["realism"] - 1.0) ** 2
        return value.reshape(6, -1).max(axis=1)

    assert official_objective(default).mean() > official_objective(official).mean()
    assert default.pairs["lift"].mean() > official.pairs["lift"].mean()
    assert (default.pairs["lift"] > official.pairs["lift"]).mean() >= 5 / 6


def test_diverse_choice_keeps_the_best_design_and_then_alternatives():
    """design.diverse_choice = λ: rank 1 is still the best restart; the rest trade objective for Φ-distance."""
    ids, users, cats = pairs(4)
    plain = make_engine(restarts=8, top_k=3).optimise(ids, users, cats, RUN_DATE)
    engine = make_engine(restarts=8, top_k=3, diverse_choice=100.0)
    diverse = engine.optimise(ids, users, cats, RUN_DATE)

    def spread(result) -> float:  # mean pairwise cosine similarity of the kept designs' Φ, per pair
        images = torch.from_numpy(result.designs["image"]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        with torch.no_grad():
            phi = torch.nn.functional.normalize(engine.objective.recommender.encode_images(
                engine.objective.adapt(images)).float(), dim=1).reshape(4, 3, -1)
        similarity = phi @ phi.transpose(1, 2)
        return float((similarity.sum() - similarity.diagonal(dim1=1, dim2=2).sum()) / (4 * 6))

    rank1 = diverse.designs["rank"] == 0
    np.testing.assert_array_equal(diverse.designs["latent"][rank1], plain.designs["latent"][rank1])
    assert spread(diverse) <= spread(plain) + 1e-6
    assert not np.array_equal(diverse.designs["latent"], plain.designs["latent"])
    objective = diverse.designs["objective"].reshape(4, 3)
    assert (objective[:, 0] >= objective[:, 1:].max(axis=1)).all()


def test_diverse_choice_drops_copies_of_a_better_restart_whatever_their_float_noise():
    """Restarts whose pictures differ by less than a grey level are one design: the choice takes the distinct ones
    first and copies only when no distinct restart is left, and noise far below a grey level never changes it."""
    engine = make_engine(top_k=3, diverse_choice=2.0)
    base = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    objective = torch.tensor([[4.0, 3.9, 3.8, 1.0, 0.5]])
    chosen = []
    for seed in range(3):
        noise = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 1e-5
        images = torch.cat([base[:1] + noise, base[1:]])  # restarts 0-2: one picture with float noise
        chosen.append(engine._choose(images, objective, 3).tolist())
        assert engine._copies(images.reshape(1, 5, -1), torch.arange(5)[None]).tolist() == \
            [[False, True, True, False, False]]
    assert chosen[0][0][0] == 0 and not {1, 2} & set(chosen[0][0])  # the best, then two distinct alternatives
    assert chosen[1] == chosen[0] and chosen[2] == chosen[0]
    only_copies = torch.cat([base[:1].expand(4, -1, -1, -1), base[1:2]])
    assert engine._choose(only_copies, objective, 3).tolist() == [[0, 4, 1]]  # copies last, best first
    by_objective = make_engine(top_k=3)._choose(only_copies, objective, 3)
    assert by_objective.tolist() == [[0, 1, 2]]  # λ = 0: the top k by objective, copies or not


class ShuffledOracle(FakeOracle):
    """Another truth: every taste, attribute and verdict permuted or shifted."""

    def taste_logit(self, user_idx, item_idx):
        return -super().taste_logit(user_idx, item_idx)[:, ::-1]

    def image_z(self, images, category_idx):
        return 1.0 - super().image_z(images, category_idx)

    def category_best(self, user_idx, category_idx):
        return -super().category_best(user_idx, category_idx)


def test_the_search_never_reads_the_oracle():
    settings = DesignConfig(restarts=4, steps=3, top_k=2, category_guard=0.0, trust_region=1.0, diverse_choice=1.0)
    ids, users, cats = pairs(4)
    latents = [PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), settings, ITEM_CATEGORY,
                                oracle=oracle).optimise(ids, users, cats, RUN_DATE).designs["latent"]
               for oracle in (FakeOracle(), ShuffledOracle(), None)]
    np.testing.assert_array_equal(latents[0], latents[1])
    np.testing.assert_array_equal(latents[0], latents[2])


def test_trust_region_keeps_designs_near_the_real_items():
    ids, users, cats = pairs(4)
    recommender = TinyVisualRecommender()
    phi = {}
    for weight in (0.0, 50.0):
        settings = DesignConfig.official(restarts=4, steps=20, lr=0.2, top_k=2, trust_region=weight)
        engine = PreferenceEngine(recommender, TinyGenerator(), settings, ITEM_CATEGORY)
        assert (engine.objective.trust_region is None) == (weight == 0)
        images = torch.from_numpy(engine.optimise(ids, users, cats, RUN_DATE).designs["image"])
        phi[weight] = recommender.encode_images(images.permute(0, 3, 1, 2).float() / 127.5 - 1.0)
    region = engine.objective.trust_region
    kept_cats = torch.from_numpy(np.repeat(cats, 2))
    far, near = (float(region.penalty(phi[w], kept_cats).mean()) for w in (0.0, 50.0))
    assert far > 0 and near < 0.5 * far


def test_scorer_ensemble_climbs_mean_minus_spread_and_identical_members_change_nothing():
    ids, users, cats = pairs(6)
    settings = DesignConfig.official(restarts=4, steps=5, top_k=2, lr=0.1)
    plain = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), settings, ITEM_CATEGORY).optimise(
        ids, users, cats, RUN_DATE)
    copies = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), settings, ITEM_CATEGORY,
                              ensemble=[TinyVisualRecommender(), TinyVisualRecommender()]).optimise(
        ids, users, cats, RUN_DATE)
    np.testing.assert_allclose(copies.designs["latent"], plain.designs["latent"], atol=1e-5)  # zero spread
    np.testing.assert_allclose(copies.designs["objective"], plain.designs["objective"], atol=1e-4)

    members = [TinyVisualRecommender(seed=3), TinyVisualRecommender(seed=4)]
    kappa = 0.5
    at_start = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), dataclasses.replace(
        settings, steps=0, ensemble_spread=kappa), ITEM_CATEGORY, ensemble=members).optimise(ids, users, cats, RUN_DATE)
    d = at_start.designs
    scorers = [TinyVisualRecommender(), *members]
    with torch.no_grad():
        images = TinyGenerator().generate(torch.from_numpy(d["latent"]), torch.from_numpy(d["category_idx"]))
        z = []
        for s in scorers:
            theta = s.theta[torch.from_numpy(d["user_idx"])]
            real = (theta @ s.item_features().T).numpy()
            member = ITEM_CATEGORY[None, :] == d["category_idx"][:, None]
            mean = np.array([r[m].mean() for r, m in zip(real, member)])
            std = np.array([r[m].std() for r, m in zip(real, member)])
            score = (s.encode_images(images) * theta).sum(1).numpy()
            z.append(((score - mean) / std, mean, std))
    stacked = np.stack([zz for zz, _, _ in z])
    expected = z[0][1] + z[0][2] * (stacked.mean(0) - kappa * stacked.std(0))
    np.testing.assert_allclose(d["objective"] + (d["realism"] - 1.0) ** 2, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(d["score"], (scorers[0].encode_images(images) * scorers[0].theta[
        torch.from_numpy(d["user_idx"])]).sum(1).detach().numpy(), atol=1e-4)  # `score` stays the recommender's
    climbed = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), settings, ITEM_CATEGORY,
                               ensemble=members).optimise(ids, users, cats, RUN_DATE)
    assert not np.allclose(climbed.designs["latent"], plain.designs["latent"])


def test_scorer_ensemble_members_are_checked_with_a_one_line_error():
    from fashiongen.config import ConfigError, load_config

    settings = DesignConfig.official(restarts=2, steps=1, top_k=1)
    with pytest.raises(EngineError, match="ensemble member 0 knows 3 users") as info:
        PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), settings, ITEM_CATEGORY,
                         ensemble=[TinyVisualRecommender(num_users=3)])
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="design.ensemble_spread"):
        load_config(overrides=["design.ensemble_spread=-1"])
