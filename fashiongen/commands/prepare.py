"""`fashiongen prepare`: import a catalogue (Fashion-MNIST, the paper's .npy, a folder) and simulate shoppers
where the source has no interactions; see fashiongen.data.prepare."""
from __future__ import annotations

import argparse

from fashiongen.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-pickle", action="store_true",
                        help="allow loading the paper's .npy (a pickle: only for files you trust)")
    parser.add_argument("--force", action="store_true", help="rebuild even if a matching catalogue exists")


def summary(meta: dict, uri: str, reused: bool) -> str:
    counts = meta["counts"]
    lines = [f"{'reused existing' if reused else 'wrote'} catalogue {uri} (source {meta['source']}"
             f"{', simulated shoppers' if meta.get('simulated') else ''})",
             f"  items {counts['items']}, users {counts['users']}, interactions {counts['interactions']} "
             f"(train {counts['train']}), cold items {counts['cold_items']} (< {meta['cold_threshold']} train)",
             f"  quarantined {counts['quarantined']} record(s)" + (": " if meta["quarantine"] else "")
             + ", ".join(f"{k} x{v}" for k, v in meta["quarantine"].items())]
    if "oracle" in meta:
        o = meta["oracle"]
        lines.append(f"  oracle AUC ceiling (test, {o['users_evaluated']} users) {o['auc_ceiling_test']:.4f}; "
                     f"category affinity alone {o['auc_category_only_test']:.4f}")
    return "\n".join(lines)


def run(cfg: Config, args: argparse.Namespace) -> int:
    import dataclasses

    from fashiongen.data.prepare import prepare_catalogue

    if args.allow_pickle:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, allow_pickle=True))
    meta, reused = prepare_catalogue(cfg, force=args.force)
    print(summary(meta, cfg.data.catalogue_uri, reused))
    return 0
