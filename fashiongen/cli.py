"""`fashiongen` command line: one subcommand per pipeline step, all sharing one config system.

    fashiongen <command> [--config FILE] [key=value ...] [command options]

Each command is one module of `fashiongen.commands` exposing `add_arguments(parser)` and `run(cfg, args) -> int`.
Command modules import the library (torch, Ray, pyarrow) inside `run` only, so `--help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from fashiongen.config import load_config
from fashiongen.errors import FashiongenError
from fashiongen.runtime import quiet_ray_console

# name -> (module, one-line help). Order = pipeline order.
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("fashiongen.commands.prepare", "import a catalogue (Fashion-MNIST, the paper's .npy, a folder) and simulate shoppers"),
    "train-classifiers": ("fashiongen.commands.train_classifiers", "train the catalogue's category classifiers (realism judge, design guard) when missing"),
    "train-recommender": ("fashiongen.commands.train_recommender", "train (or resume) the recommender (DVBPR with Ray Train, or a baseline)"),
    "evaluate": ("fashiongen.commands.evaluate", "full, sampled-100 and cold AUC of recommender checkpoints, with the oracle ceiling"),
    "export": ("fashiongen.commands.export", "export user vectors, item features and per-user top-k real items as Parquet"),
    "train-gan": ("fashiongen.commands.train_gan", "train (or resume) the category-conditional GAN with Ray Train"),
    "train-designer": ("fashiongen.commands.train_designer", "train the amortised designer (one pass per pair) for design.mode=amortised(+refine)"),
    "generate": ("fashiongen.commands.generate", "design for every (user, category) pair with Ray Data and publish the run to the lake"),
    "design": ("fashiongen.commands.design", "design for one user and write pictures: catalogue top-k vs generated, optimisation steps"),
    "demo": ("fashiongen.commands.demo", "the whole pipeline on the embedded default, ending with the AUC table and the designs"),
    "simulate-day": ("fashiongen.commands.simulate_day", "land a day of simulated shoppers' interactions for the nightly run"),
    "nightly": ("fashiongen.commands.nightly", "refresh user vectors from landed interactions, evaluate, design for changed users, publish"),
    "lake": ("fashiongen.commands.lake", "read the designs table (published runs, one user's designs, a contact sheet); migrate a Hive-layout lake"),
    "report": ("fashiongen.commands.report", "write a designs run's HTML report (judges, realism, lifts, contact sheets, history)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fashiongen", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", default=None, help="YAML config file (default: built-in defaults)")
        p.set_defaults(_module=module)
        adder = getattr(importlib.import_module(module), "add_arguments", None)
        if adder:
            adder(p)  # a command's own positionals (e.g. `lake runs`) come before the overrides
        p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. recommender.epochs=3")
    return parser


def main(argv: list[str] | None = None) -> int:
    quiet_ray_console()  # before any command imports Ray
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    unknown = [a for a in extra if "=" not in a or a.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.overrides = [*args.overrides, *extra]  # key=value after a command's options
    try:
        cfg = load_config(args.config, args.overrides)
        return int(importlib.import_module(args._module).run(cfg, args) or 0)
    except FashiongenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
