"""Is the yardstick honest? The simulated shoppers' true taste against trivial rivals, for both tastes.

    python bench/oracle_honesty.py --lake lake          # after `fashiongen demo` (its catalogue and DVBPR)
    python bench/oracle_honesty.py --lake lake --items 1000 --users 24

1. Invariance: for --items random real items (each with a random shopper), |true taste change| under a random 1-3 px
   shift (8 directions, background fill) and a random 0.9-1.1 rescale, over that shopper's taste spread in the
   category (max - min over its real items; also over the std), median and p90, on the lake's catalogue (its
   taste) and on the same images and settings with the other taste.
2. The nudged photo: for --users validation users x every category (users the demo does not publish), the best real
   item the lake's learned scorer retrieves, and the 1-3 px shift of it that the learned scorer likes best: the
   share of pairs where the nudge beats the unshifted item under the true taste (target <= 55% at >= 200 pairs).
The other taste's catalogue is built beside the lake's (same images, shoppers, seeds) in a temporary folder.
"""
from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch

from fashiongen.config import load_config
from fashiongen.data.contract import load_catalogue
from fashiongen.data.images import to_tensor_range
from fashiongen.data.oracle import load_truth
from fashiongen.data.prepare import prepare_catalogue
from fashiongen.evaluation.nudge import nudged_rival, taste_invariance
from fashiongen.lake import layout
from fashiongen.models.contract import load_recommender, visual_score, visual_score_matrix


def invariance_rows(catalogue, truth, items: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    chosen = rng.choice(catalogue.num_items, min(items, catalogue.num_items), replace=False)
    users = rng.integers(0, catalogue.num_users, len(chosen))
    moved = taste_invariance(truth, catalogue.images[chosen], users, catalogue.item_category[chosen], rng)
    ratio = []  # the same changes over the std instead of the range
    for u, c in zip(users, catalogue.item_category[chosen]):
        taste = truth.taste_logit([u], np.flatnonzero(truth.item_category == c))[0]
        ratio.append((taste.max() - taste.min()) / taste.std())
    ratio = np.asarray(ratio)
    return [f"| {truth.version} | {name} | {np.median(v):.1%} | {np.percentile(v, 90):.1%} | "
            f"{np.median(v * ratio):.1%} | {len(v)} |" for name, v in moved.items()]


def learned_scorer(model):
    """(uint8 images, users, categories) -> the learned recommender's visual score v·Φ + b − a·Φ²."""
    def score(images: np.ndarray, users: np.ndarray, categories: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for lo in range(0, len(images), 1024):
                x = torch.from_numpy(to_tensor_range(images[lo:lo + 1024]))
                terms = model.score_terms(torch.from_numpy(users[lo:lo + 1024]),
                                          torch.from_numpy(categories[lo:lo + 1024]))
                out.append(visual_score(model.encode_images(x).float(), *terms).numpy())
        return np.concatenate(out)
    return score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--lake", default="lake")
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--users", type=int, default=24, help="validation users (x every category)")
    parser.add_argument("--published", type=int, default=24, help="users the demo may publish (skipped)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    uri = f"{args.lake}/catalogue"
    catalogue = load_catalogue(uri)
    truth = load_truth(uri, catalogue)
    other_taste = "linear" if truth.taste == "sweet_spot" else "sweet_spot"
    shared = ("num_users", "seed", "min_interactions", "activity_sigma", "mean_extra_interactions")  # not the taste's
    overrides = [f"simulation.{k}={truth.params[k]}" for k in shared]
    other_uri = f"{tempfile.mkdtemp(prefix='bench-oracle-')}/catalogue"
    preset = ["simulation.preset=linear"] if other_taste == "linear" else []
    prepare_catalogue(load_config(args.config, [f"data.catalogue_uri={other_uri}",
                                                f"data.max_items={catalogue.meta['params']['max_items']}",
                                                *overrides, *preset]))
    other = load_catalogue(other_uri)
    other_truth = load_truth(other_uri, other)

    print(f"## Invariance ({catalogue.num_items} items, {catalogue.num_users} shoppers)\n")
    print("| oracle | change | median / taste range | p90 / taste range | median / taste std | items |")
    print("|---|---|---|---|---|---|")
    for cat, t in ((catalogue, truth), (other, other_truth)):
        print("\n".join(invariance_rows(cat, t, args.items, seed=0)))

    model = load_recommender(f"{args.lake}/models/recommender/dvbpr.pt")
    order = sorted(catalogue.user_ids, key=lambda u: layout.id_key("sample", u))
    users = catalogue.user_index(order[args.published:args.published + args.users])
    pairs_u = np.repeat(users, len(catalogue.categories))
    pairs_c = np.tile(np.arange(len(catalogue.categories)), len(users))
    phi = model.item_features().detach().float()
    best = []
    with torch.no_grad():
        for u, c in zip(pairs_u, pairs_c):
            members = np.flatnonzero(catalogue.item_category == c)
            scores = visual_score_matrix(phi[members], *model.score_terms(torch.tensor([u]), torch.tensor([c])))
            best.append(members[int(scores.argmax())])
    best = np.asarray(best)
    print(f"\n## The learned scorer's favourite 1-3 px shift of its best real item vs the item "
          f"({len(best)} pairs: {len(users)} validation users x {len(catalogue.categories)} categories)\n")
    print("| oracle | nudge wins | mean true gain | p (sign) |\n|---|---|---|---|")
    for cat, t in ((catalogue, truth), (other, other_truth)):
        verdict = nudged_rival(learned_scorer(model), t, cat.images[best], pairs_u, pairs_c)
        print(f"| {t.version} | {verdict['win_share']:.1%} | {verdict['mean_lift']:+.3f} | {verdict['p_sign']:.2g} |")
    print(f"\n(the scorer is {args.lake}'s DVBPR, trained on the {truth.version} shoppers)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
