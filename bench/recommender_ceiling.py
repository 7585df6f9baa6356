"""How high can a recommender learned from these interactions go? Bounds from the simulator's own truth.

    python bench/recommender_ceiling.py --items 10000 --users 2000 [--split validation]

The oracle scores each item with the *true* user taste (category affinity a_u, style s_u, hidden popularity): its
AUC is the ceiling of a model that knows each shopper exactly. A learned model only sees ~10 training interactions
per shopper, so this script also scores models that are handed the simulator's *true item features* (the
per-category z-scored attributes the utility uses; with the sweet-spot taste also their squares, since an ideal point
-sum w (z - m)^2 is linear in (z, z^2)) and must estimate the rest from the training interactions:

- category share + w·log(1 + count): CategoryPop's two terms, no style;
- + a content profile: θ_u = the mean true features of u's training items (no fitting);
- + a fitted θ_u and item bias: the within-category softmax likelihood of u's picks under θ_u·z_i + b_i with an L2
  prior on θ (the simulator's own choice model), MAP by full-batch Adam.

A visual recommender learns Φ from pixels, so it can at best match the last row ("perfect Φ"); the gap from there to
the oracle is what ~10 interactions cannot reveal about a shopper. Not a model: the true features are the truth's,
so nothing here may rank real items in production. Seeds fixed (catalogue seed 0, split as `fashiongen prepare`).

`--model URI` (repeatable) adds, for a trained visual recommender of the same catalogue, its own score, the count
prior + its learned θ_u·Φ_i, and the count prior + γ·(content profile on *its* Φ): θ_u replaced by the mean of the
per-category z-scored Φ of u's training items, γ chosen on the validation split (the profile is a lever for #12:
it needs no training and measures how much of the gap is θ, not Φ).
"""
from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--split", default="validation", choices=["validation", "test"])
    parser.add_argument("--catalogue", default=None, help="an existing simulated catalogue (default: prepare one)")
    parser.add_argument("--model", action="append", default=[], help="a trained visual recommender (repeatable)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from fashiongen.config import load_config
    from fashiongen.data.contract import load_catalogue
    from fashiongen.data.oracle import load_truth
    from fashiongen.data.prepare import prepare_catalogue
    from fashiongen.evaluation.recommender_eval import evaluate_scorer, markdown_table
    from fashiongen.evaluation.taste import taste_fidelity

    torch.manual_seed(0)
    uri = args.catalogue
    if uri is None:
        uri = f"{tempfile.mkdtemp(prefix='bench-ceiling-')}/catalogue"
        prepare_catalogue(load_config(None, [f"data.catalogue_uri={uri}", f"data.max_items={args.items}",
                                             f"simulation.num_users={args.users}"]))
    catalogue = load_catalogue(uri, with_images=False)
    truth = load_truth(uri, catalogue)
    n_items, n_users, n_cats = catalogue.num_items, catalogue.num_users, len(catalogue.categories)
    cat = catalogue.item_category
    counts = np.zeros((n_users, n_cats))
    np.add.at(counts, (catalogue.train_users, cat[catalogue.train_items]), 1)
    log_share = np.log((counts + 0.1) / (counts.sum(1, keepdims=True) + 0.1 * n_cats))
    log_count = np.log1p(catalogue.item_train_count.astype(np.float64))
    z = standardised(truth.item_features, cat, n_cats)  # as the simulator's utility uses them
    if truth.taste == "sweet_spot":  # an ideal point is linear in (z, z^2): the perfect Φ carries both
        z = np.concatenate([z, standardised(z ** 2, cat, n_cats)], axis=1)
    per_user = np.bincount(catalogue.train_users, minlength=n_users)[:, None]
    profile = np.zeros((n_users, z.shape[1]))
    np.add.at(profile, catalogue.train_users, z[catalogue.train_items])
    profile /= per_user + 1.0
    theta, bias = fit_choice_model(z, cat, catalogue.train_users, catalogue.train_items, n_users, n_cats)

    scorers = {
        "category share": lambda u: log_share[u][:, cat],
        "category share + 0.3 log(1+count)": lambda u: log_share[u][:, cat] + 0.3 * log_count[None],
        "+ content profile on true features": lambda u: log_share[u][:, cat] + 0.3 * log_count[None]
        + 0.5 * profile[u] @ z.T,
        "+ fitted θ_u and b_i on true features (perfect Φ)": lambda u: log_share[u][:, cat] + bias[None]
        + theta[u] @ z.T,
        "oracle (true taste)": truth.item_utility,
    }
    for model_uri in args.model:
        scorers.update(profile_scorers(model_uri, catalogue, log_share, log_count, per_user))
    visual = {  # the part of a scorer that an image carries (what designs climb): taste fidelity reads it
        "+ content profile on true features": lambda u: profile[u] @ z.T,
        "+ fitted θ_u and b_i on true features (perfect Φ)": lambda u: theta[u] @ z.T,
        "oracle (true taste)": truth.taste_logit,
    }
    taste_users = np.sort(np.random.default_rng(0).choice(n_users, size=min(200, n_users), replace=False))
    rows = []
    for name, scores in scorers.items():
        row, _ = evaluate_scorer(name, scores, catalogue, split=args.split, bootstrap_reps=500)
        if name in visual:
            row.update(taste_fidelity(visual[name], truth, cat, taste_users))
        rows.append(row)
        print(f"  {name}: {args.split} full AUC {row['auc_full']:.4f}, taste within "
              f"{row.get('taste_within', float('nan')):.2f}", flush=True)
    print(f"\n{n_items} items, {n_users} shoppers, {len(catalogue.train_users)} training interactions, "
          f"{args.split} split; taste fidelity (Spearman with the true taste, 200 users) of the visual part\n")
    print(markdown_table(rows, extra=("taste_within", "taste_overall")))


def standardised(features, cat, n_cats: int):
    """Per-category z-scores of item features (the simulator's own normalisation of its true features)."""
    out = features.astype("float64").copy()
    for c in range(n_cats):
        m = cat == c
        out[m] = (out[m] - out[m].mean(0)) / (out[m].std(0) + 1e-6)
    return out


def profile_scorers(model_uri: str, catalogue, log_share, log_count, per_user) -> dict:
    """A trained model's rows: its score, prior + its θ·Φ, prior + γ·profile on its Φ (γ chosen on validation)."""
    import numpy as np

    from fashiongen.evaluation.recommender_eval import evaluate_scorer
    from fashiongen.models.contract import load_recommender

    model = load_recommender(model_uri)
    cat = catalogue.item_category
    phi = model.item_features().detach().cpu().numpy().astype(np.float64)
    theta = model.user_vectors().detach().cpu().numpy().astype(np.float64)
    z = standardised(phi, cat, len(catalogue.categories))
    profile = np.zeros((catalogue.num_users, phi.shape[1]))
    np.add.at(profile, catalogue.train_users, z[catalogue.train_items])
    profile /= per_user + 1.0
    prior = lambda u: log_share[u][:, cat] + 0.3 * log_count[None]  # noqa: E731
    best = max((0.02, 0.05, 0.1, 0.2), key=lambda g: evaluate_scorer(
        "γ", lambda u: prior(u) + g * profile[u] @ z.T, catalogue, split="validation", bootstrap_reps=10)[0]["auc_full"])
    name = model.kind + " " + model.model_version
    return {f"{name}: its score": lambda u: model.score(u).detach().cpu().numpy(),
            f"{name}: prior + its θ·Φ": lambda u: prior(u) + theta[u] @ phi.T,
            f"{name}: prior + {best}·profile on its Φ (γ from validation)":
                lambda u: prior(u) + best * profile[u] @ z.T}


def fit_choice_model(z, cat, users, items, n_users: int, n_cats: int, lam: float = 1.0, steps: int = 300):
    """MAP θ (U, F) and b (N,) of the within-category softmax choice model on the training picks."""
    import numpy as np
    import torch

    feats, cats = torch.tensor(z, dtype=torch.float32), torch.tensor(cat)
    u, i = torch.tensor(users), torch.tensor(items)
    onehot = torch.nn.functional.one_hot(cats, n_cats).float()
    theta = torch.zeros(n_users, feats.shape[1], requires_grad=True)
    bias = torch.zeros(len(z), requires_grad=True)
    optimiser = torch.optim.Adam([theta, bias], lr=0.05)
    for _ in range(steps):
        logits = theta @ feats.T + bias[None]
        top = logits.max()
        normaliser = torch.exp(logits - top) @ onehot  # (U, C) within-category partition sums
        log_p = logits[u, i] - top - torch.log(normaliser[u, cats[i]])
        loss = -log_p.sum() + lam * theta.pow(2).sum() + bias.pow(2).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return theta.detach().numpy().astype(np.float64), bias.detach().numpy().astype(np.float64)


if __name__ == "__main__":
    main()
