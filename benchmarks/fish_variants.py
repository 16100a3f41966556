"""The daemon's fish matching variants both open-set benchmarks compare, each in turn:
the threshold per gallery size, the gallery (committed, or the stream's known fish alone) and
re-ranking (issue 28, eighth round)."""

from __future__ import annotations

import argparse


def add_variant_args(parser: argparse.ArgumentParser) -> None:
    """``--size-thresholds``, ``--gallery`` and ``--rerank``, each a list of variants."""
    parser.add_argument(
        "--size-thresholds",
        nargs="+",
        choices=["off", "on"],
        default=["off"],
        help="the card's threshold per gallery size (threshold_by_gallery_size), each in turn",
    )
    parser.add_argument(
        "--gallery",
        nargs="+",
        choices=["full", "known"],
        default=["full"],
        help="the committed gallery (168), or the stream's known fish alone (60), each in turn",
    )
    parser.add_argument(
        "--rerank",
        nargs="+",
        choices=["off", "qe"],
        default=["off"],
        help="gallery scores as they are, or re-ranked by query expansion, each in turn",
    )
