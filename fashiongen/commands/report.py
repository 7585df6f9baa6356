"""`fashiongen report`: write a designs run's self-contained HTML report under the lake and print where it is.

    fashiongen report                                   # the latest complete run
    fashiongen report --run-date 2026-11-26 --users 12  # a date, with 12 users' contact sheets
    fashiongen report --run-date 2026-11-26 --user u000042   # one user's page of that run
"""
from __future__ import annotations

import argparse

from fashiongen.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-date", default=None, help="a complete run's date (default: the latest)")
    parser.add_argument("--user", default=None, help="write this user's page instead of the run's")
    parser.add_argument("--users", type=int, default=None, help="users with a contact sheet on the run's page")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from fashiongen.report.page import SAMPLE_USERS, write_report, write_user_page

    run_date = args.run_date or cfg.run_date or None
    if args.user:
        print(f"report of user {args.user}: {write_user_page(cfg, run_date, args.user)}")
    else:
        print(f"report: {write_report(cfg, run_date, users=SAMPLE_USERS if args.users is None else args.users)}")
    return 0
