"""Command line: run the daemon, serve the embedded OpenAI-compatible server, or show a demo."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="streamvisor: a supervised streaming daemon for the OpenAI API.",
    )
    parser.add_argument(
        "--config", help="path to a streamvisor.toml (default: config/streamvisor.toml)"
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("daemon", help="run the daemon (the default)")
    mock = sub.add_parser("mockapi", help="serve the embedded OpenAI-compatible server alone")
    mock.add_argument("--port", type=int, default=8765)
    demo = sub.add_parser("demo", help="show one feature live in the terminal")
    demo.add_argument(
        "feature", choices=["stream", "responses", "background", "files", "agent", "combined"]
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    raise SystemExit(f"command {args.command or 'daemon'!r} is not wired yet")
