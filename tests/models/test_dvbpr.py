"""DVBPR and the baselines in-process: encoders, triple sampling, the official loss, learning a planted signal,
checkpoint round trips through the contract registry."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fashiongen.config import load_config
from fashiongen.data.contract import load_catalogue
from fashiongen.evaluation.auc import full_auc, held_out
from fashiongen.models.contract import recommender_class
from fashiongen.models.poprank import PopRank
from fashiongen.models.bpr import TrainSet, sample_triples
from fashiongen.models.cnn import ArchitectureError, build_encoder, regularised_weights
from fashiongen.models.contract import load_recommender, visual_score, visual_score_matrix
from fashiongen.models.dvbpr import CURVATURE_FLOOR, DVBPR, DVBPRNet, UserProfiles, dvbpr_loss

torch.set_num_threads(1)
PAPER_GOLDEN = Path(__file__).with_name("paper_dvbpr.npz")  # the paper preset's training before #12's recipe existed


@pytest.fixture(scope="module")
def catalogue(shared_catalogue):
    return load_catalogue(shared_catalogue())


def _cfg(*extra):
    return load_config(None, ["recommender.k=8", "recommender.batch_size=16", "recommender.lr=0.003", *extra])


def test_cnnf_is_the_official_shape_and_small_fits_small_images():
    cnnf = build_encoder("cnnf", 3, 224, 50)
    assert cnnf.head[1].in_features == 7 * 7 * 256  # SAME padding: 224 -> 56 -> 28 -> 14 -> 7
    assert [m.out_features for m in cnnf.head if isinstance(m, torch.nn.Linear)] == [4096, 4096, 50]
    assert sum(isinstance(m, torch.nn.Dropout) for m in cnnf.head) == 2
    with torch.no_grad():
        assert cnnf.eval()(torch.zeros(1, 3, 224, 224)).shape == (1, 50)
    small = build_encoder("small", 1, 28, 50)
    assert small.head[1].in_features == 4 * 4 * 128 and small(torch.zeros(2, 1, 28, 28)).shape == (2, 50)
    assert all(float(m.bias.detach().abs().sum()) == 0 for m in small.modules() if isinstance(m, torch.nn.Conv2d))
    with pytest.raises(ArchitectureError, match="data.image_size=224"):
        build_encoder("cnnf", 3, 64, 50)
    with pytest.raises(ArchitectureError, match="one of"):
        build_encoder("vgg", 3, 64, 50)


def test_triples_follow_the_official_sampler():
    users = np.array([0] * 8 + [1] + [2] * 3)
    items = np.array([0, 1, 2, 3, 4, 5, 6, 7, 3, 8, 9, 1])
    train = TrainSet.from_pairs(users, items, num_users=3, num_items=12)
    u, i, j = sample_triples(train, 30000, np.random.default_rng(0))
    assert train.contains(u, i).all() and not train.contains(u, j).any()
    np.testing.assert_allclose(np.bincount(u) / len(u), [1 / 3] * 3, atol=0.02)  # uniform over users, not interactions
    assert set(np.unique(j[u == 0])) == {8, 9, 10, 11}  # all non-train items, held-out ones included


def test_loss_is_the_official_batch_sum_with_weight_decay_on_weights_only():
    torch.manual_seed(0)
    net = DVBPRNet(num_users=5, k=4, arch="small", image_shape=(1, 8, 8)).eval()
    users = torch.tensor([0, 1, 1])
    pos, neg = torch.rand(3, 1, 8, 8) * 2 - 1, torch.rand(3, 1, 8, 8) * 2 - 1
    x, theta, _ = net(users, pos, neg)
    phi_p, phi_n = net.encoder(pos), net.encoder(neg)
    torch.testing.assert_close(x, (net.theta.weight[users] * (phi_p - phi_n)).sum(1))
    loss, objective = dvbpr_loss(net, x, theta, lambda_cnn=1e-3, lambda_theta=1.0)
    decay = 1e-3 * 0.5 * sum(float(w.detach().pow(2).sum()) for w in regularised_weights(net.encoder))
    with torch.no_grad():
        expected = float(-torch.nn.functional.logsigmoid(x).sum() + 0.5 * net.theta.weight[users].pow(2).sum()) + decay
    assert objective == pytest.approx(expected, rel=1e-5) and loss.item() == pytest.approx(expected, rel=1e-5)
    scaled, _ = dvbpr_loss(net, x, theta, 1e-3, 1.0, data_scale=2.0)  # DDP with 2 workers: data terms x2, decay once
    assert scaled.item() == pytest.approx(2 * (expected - decay) + decay, rel=1e-5)
    assert len(regularised_weights(net.encoder)) == 5 and all(w.dim() > 1 for w in regularised_weights(net.encoder))
    assert 0 <= net.theta.weight.min().item() and net.theta.weight.max().item() <= 0.01  # θ ~ U(0, 0.01)


def test_dvbpr_learns_a_planted_visual_signal_and_round_trips(catalogue, tmp_path):
    model = DVBPR.from_config(_cfg("recommender.epochs=8").recommender)
    history = model.fit(catalogue)
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    auc = full_auc(model.score, held_out(catalogue, "test")).mean()
    assert auc > 0.65  # ceiling ~0.75: same-side negatives are indistinguishable by design

    uri = str(tmp_path / "dvbpr.pt")
    version = model.save(uri)
    loaded = load_recommender(uri)
    assert isinstance(loaded, DVBPR) and loaded.model_version == version and loaded.visual
    users = np.arange(catalogue.num_users)
    torch.testing.assert_close(loaded.score(users), model.score(users))
    images = torch.rand(4, 1, 8, 8, requires_grad=True)
    out = loaded.encode_images(images * 2 - 1)
    torch.testing.assert_close(out, loaded.encode_images(images * 2 - 1))  # eval mode: dropout off
    out.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0  # differentiable in the image


@pytest.mark.parametrize("kind", ["bprmf", "vbpr"])
def test_factor_baselines_learn_and_score_with_their_vectors(catalogue, tmp_path, kind):
    cfg = _cfg("recommender.baseline_epochs=12", "recommender.classifier_epochs=1")
    model = recommender_class(kind).from_config(cfg.recommender)
    history = model.fit(catalogue)
    assert history[-1]["loss"] < history[0]["loss"]
    users = np.array([0, 3, 5])
    torch.testing.assert_close(model.score(users), model.user_vectors()[users] @ model.item_features().T)
    uri = str(tmp_path / f"{kind}.pt")
    model.save(uri)
    torch.testing.assert_close(load_recommender(uri).score(users), model.score(users))


def test_poprank_scores_training_popularity(catalogue):
    model = PopRank()
    model.fit(catalogue)
    counts = np.bincount(catalogue.train_items, minlength=catalogue.num_items)
    np.testing.assert_array_equal(model.score(np.array([0, 1])).numpy(), np.tile(counts, (2, 1)))


def _standardised(phi: np.ndarray, cats: np.ndarray) -> np.ndarray:
    z = np.empty_like(phi)
    for c in np.unique(cats):
        z[cats == c] = (phi[cats == c] - phi[cats == c].mean(0)) / (phi[cats == c].std(0) + 1e-6)
    return z


def test_profile_user_model_is_the_shrunk_mean_of_standardised_phi(catalogue, tmp_path):
    model = DVBPR.from_config(_cfg("recommender.epochs=2", "recommender.user_model=profile").recommender)
    model.fit(catalogue)
    phi, cats = model.item_features().double().numpy(), catalogue.item_category
    z = _standardised(phi, cats)
    train = TrainSet.from_catalogue(catalogue)
    weight = float(model.profiles.weight[2]) * model.profiles.dim_weight.double().numpy()  # one per dimension
    assert float(model.profiles.weight[2]) == 1.0 and np.ptp(weight) > 0  # fitted per dimension
    expected = np.stack([weight * z[train.items[train.indptr[u]:train.indptr[u + 1]]].sum(0)
                         / (train.indptr[u + 1] - train.indptr[u] + 1) for u in range(catalogue.num_users)])
    np.testing.assert_allclose(model.user_vectors().double().numpy(), expected, rtol=1e-4, atol=1e-5)
    assert weight.mean() > 0  # the planted catalogue's picks follow the image: the profile weighs in positively

    # design vectors score an item of category c exactly as the visual part of `score` does
    users = torch.arange(catalogue.num_users)
    profiles = model.profiles
    w_share, w_count = (float(w) for w in profiles.weight[:2])
    counts = np.zeros((catalogue.num_users, 2))
    np.add.at(counts, (np.repeat(np.arange(catalogue.num_users), np.diff(train.indptr)), cats[train.items]), 1)
    log_share = np.log((counts + 0.1) / (counts.sum(1, keepdims=True) + 0.2))
    np.testing.assert_allclose(profiles.log_share.numpy(), log_share, rtol=1e-5)
    np.testing.assert_allclose(profiles.log_count.numpy(), np.log1p(np.bincount(train.items, minlength=len(cats))))
    visual = model.score(users.numpy()).double().numpy() - (w_share * log_share[:, cats]
                                                            + w_count * profiles.log_count.double().numpy()[None])
    np.testing.assert_allclose(visual, expected @ z.T, rtol=1e-4, atol=1e-4)
    for c in np.unique(cats):
        v, b = model.design_vectors(users, torch.full_like(users, int(c)))
        np.testing.assert_allclose((v @ model.item_features()[cats == c].T + b[:, None]).double().numpy(),
                                   visual[:, cats == c], rtol=1e-4, atol=1e-4)
    auc = full_auc(model.score, held_out(catalogue, "test")).mean()
    assert auc > 0.65

    uri = str(tmp_path / "profile.pt")
    model.save(uri)
    loaded = load_recommender(uri)
    torch.testing.assert_close(loaded.score(users.numpy()), model.score(users.numpy()))
    torch.testing.assert_close(loaded.design_vectors(users, users % 2), model.design_vectors(users, users % 2))
    payload = torch.load(uri, weights_only=True)  # a model saved before the per-dimension weights loads as all ones
    del payload["state"]["profiles"]["dim_weight"]
    torch.save(payload, tmp_path / "before.pt")
    assert torch.equal(load_recommender(str(tmp_path / "before.pt")).profiles.dim_weight, torch.ones(8))

    # the nightly refresh: a user's profile is recomputed from the new interactions, no SGD
    with pytest.raises(NotImplementedError, match="refit_users"):
        loaded.set_user_vectors(np.array([0]), torch.zeros(1, 8))
    new_items = np.flatnonzero(~train.contains(np.zeros(catalogue.num_items, np.int64), np.arange(catalogue.num_items)))[:3]
    grown = TrainSet.from_pairs(np.r_[catalogue.train_users, [0, 0, 0]], np.r_[catalogue.train_items, new_items],
                                catalogue.num_users, catalogue.num_items)
    assert loaded.refit_users(np.array([0]), grown)
    items = grown.items[grown.indptr[0]:grown.indptr[1]]
    np.testing.assert_allclose(loaded.user_vectors()[0].double().numpy(), weight * z[items].sum(0) / (len(items) + 1),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loaded.user_vectors()[1:].numpy(), model.user_vectors()[1:].numpy())
    assert not DVBPR(k=8).refit_users(np.array([0]), grown)  # the paper's θ is refreshed by SGD


def test_ideal_point_user_side_scores_the_profile_centre_above_points_beyond_it(tmp_path):
    """Shoppers who pick garments near a sweet spot on one feature: the fitted curvature makes the score peak there,
    where the linear profile keeps rising past every garment; real items and designs are scored alike."""
    rng = np.random.default_rng(0)
    num_users, num_items = 40, 300
    phi = torch.from_numpy(np.c_[rng.uniform(-3, 3, num_items), rng.normal(size=num_items)].astype(np.float32))
    ideal = np.where(np.arange(num_users) % 2 == 0, 1.0, -1.0)
    picks = [(u, i) for u in range(num_users) for i in np.flatnonzero(np.abs(phi[:, 0].numpy() - ideal[u]) < 0.4)]
    users, items = (np.array(a, np.int64) for a in zip(*picks))
    train = TrainSet.from_pairs(users, items, num_users, num_items)
    chosen = rng.integers(0, len(users), 4000)
    triples = users[chosen], items[chosen], rng.integers(0, num_items, 4000)
    cats = np.zeros(num_items, np.int64)

    scores = {}
    for ideal_point in (False, True):
        profiles = UserProfiles(num_users, 2, 1, num_items, ideal_point=ideal_point)
        profiles.fit(phi, cats, train, triples)
        user, category = torch.tensor([0]), torch.tensor([0])  # ideal +1
        model = DVBPR(k=2, user_model="ideal_point" if ideal_point else "profile")
        model.profiles, model.item_phi = profiles, phi
        v, b = model.design_vectors(user, category)
        a = model.design_curvature(category)
        assert (a is None) != ideal_point
        centre = phi[items[users == 0]].mean(0, keepdim=True)
        beyond = centre + 2.0 * (centre - phi.mean(0, keepdim=True))
        scores[ideal_point] = [float(visual_score(x, v, b, a)) for x in (centre, beyond)]
        visual = profiles.matrix(user, slice(None), phi) - profiles.weight[0] * profiles.log_share[user][:, cats] \
            - profiles.weight[1] * profiles.log_count[None, :]
        torch.testing.assert_close(visual_score_matrix(phi, v, b, a), visual, rtol=1e-4, atol=1e-4)
    assert scores[False][1] > scores[False][0]  # linear: beyond the shopper's garments is better still
    assert scores[True][0] > scores[True][1]  # ideal point: the centre of the shopper's garments wins
    q = profiles.curvature
    assert float(q[0]) > 10 * float(q[1]) and float(q.min()) >= CURVATURE_FLOOR  # taste curves on feature 0 only

    model = DVBPR(k=2, user_model="ideal_point").build(num_users, num_items, (1, 8, 8), num_categories=1)
    model.profiles.load_state_dict(profiles.state_dict())
    model.save(str(tmp_path / "ideal.pt"))
    loaded = load_recommender(str(tmp_path / "ideal.pt"))
    torch.testing.assert_close(loaded.design_curvature(category), model.design_curvature(category))


def test_profile_needs_the_catalogue_and_a_known_user_model():
    with pytest.raises(ValueError, match="user_model='mean'"):
        DVBPR(user_model="mean")
    with pytest.raises(ValueError, match="categories"):
        DVBPR(k=8, user_model="profile").build(4, 12, (1, 8, 8))
    model = DVBPR(k=8, user_model="profile").build(4, 12, (1, 8, 8), num_categories=2)
    with pytest.raises(ValueError, match="build_for"):
        model.index_catalogue(np.zeros((12, 8, 8, 1), np.uint8))


def test_paper_preset_reproduces_the_training_before_the_recipe_existed(catalogue):
    """recommender.preset=paper: learned θ, no prior, uniform negatives; same seed, same scores bit for bit as the
    code before profiles and the prior became the default (tests/models/paper_dvbpr.npz)."""
    cfg = load_config(None, ["recommender.preset=paper", "recommender.epochs=2", "recommender.k=8"]).recommender
    assert (cfg.user_model, cfg.count_prior, cfg.negatives_same_category) == ("learned", False, 0.0)
    torch.manual_seed(0)
    model = DVBPR.from_config(cfg)
    history = model.fit(catalogue)
    golden = np.load(PAPER_GOLDEN)
    np.testing.assert_array_equal(model.score(np.arange(catalogue.num_users)).numpy(), golden["score"])
    np.testing.assert_array_equal([h["loss"] for h in history], golden["loss"])
