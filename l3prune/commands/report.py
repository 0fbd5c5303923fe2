"""`l3prune report` (argparse only here; the work is imported when it runs)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="summary.csv and a score-against-parameters plot of a model's evaluated variants",
        description="Read RESULTS_DIR/<variant>/mteb.json of every variant, and its untrained baseline "
        "RESULTS_DIR/<variant>/untrained/mteb.json where there is one; write summary.csv and "
        "score_vs_parameters.png to --out-dir and print the table.",
    )
    p.add_argument("results_dir", metavar="RESULTS_DIR", help="a model's results folder, e.g. results/demo")
    p.add_argument("--out-dir", required=True, metavar="DIR", help="where summary.csv and the plot go")
    p.add_argument(
        "--variants",
        nargs="+",
        metavar="NAME",
        help="variants to include (default: every folder with an mteb.json or an untrained/mteb.json)",
    )
    p.add_argument(
        "--no-untrained",
        dest="untrained",
        action="store_false",
        help="leave the untrained baselines out (default: read every untrained/mteb.json there is)",
    )
    p.add_argument(
        "--model-name",
        metavar="NAME",
        help="the model named in the plot's title (default: the last part of the base model's name)",
    )
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> None:
    import csv
    import sys

    from ..report import SUMMARY_FILE, write_report

    rows = write_report(
        args.results_dir, args.out_dir, args.variants, untrained=args.untrained, model_name=args.model_name
    )
    print(f"{args.out_dir}/{SUMMARY_FILE}:", file=sys.stderr)
    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
