"""Command line: ``irtgen build SPEC.py [-o DIR]``, ``irtgen build --builtins``, ``--check``."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="irtgen",
        description="Compile symbolic CDFs into torch distributions and Triton kernels with "
        "implicit reparameterization gradients.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser(
        "build",
        help="generate modules from spec files",
        description="Write DIR/<snake_name>.py for every irtgen.Distribution in each spec file.",
    )
    b.add_argument("specs", nargs="*", type=Path, help="spec files (Python, SymPy)")
    b.add_argument(
        "-o", "--output", type=Path, default=None, help="output folder (default: generated/)"
    )
    b.add_argument(
        "--builtins", action="store_true", help="regenerate generated/ from irtgen/specs/"
    )
    b.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any output would change"
    )
    b.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    b.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    return parser


def _report(quiet: bool):
    def progress(result):
        if quiet and result.status in ("written", "unchanged"):
            return
        t = result.seconds
        print(
            f"{result.name:>16s}  {result.status:9s} {result.path}  "
            f"(derive {t.get('derive', 0):.2f} s, generate {t.get('generate', 0):.2f} s, "
            f"write {t.get('write', 0):.3f} s)"
        )

    return progress


def _build(args) -> int:
    from irtgen.build import BuildError, build_builtins, build_spec

    if not args.specs and not args.builtins:
        print("irtgen build: give spec files or --builtins", file=sys.stderr)
        return EXIT_ERROR
    progress = _report(args.quiet)
    results, orphans = [], []
    try:
        if args.builtins:
            r, orphans = build_builtins(check=args.check, progress=progress)
            results += r
        out = args.output if args.output is not None else Path("generated")
        for spec in args.specs:
            results += build_spec(spec, out, check=args.check, progress=progress)
    except BuildError as err:
        if args.debug:
            traceback.print_exc()
        print(f"irtgen: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    if args.check:
        drift = [r for r in results if r.status in ("stale", "missing")]
        for p in orphans:
            print(f"{'':>16s}  orphan    {p} (no spec produces it)")
        if drift or orphans:
            print(
                f"irtgen: {len(drift) + len(orphans)} generated file(s) out of date; run the "
                "command in their header (irtgen build --builtins for generated/)",
                file=sys.stderr,
            )
            return EXIT_DRIFT
        if not args.quiet:
            print(f"irtgen: {len(results)} generated module(s) up to date")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "build":
        return _build(args)
    return EXIT_ERROR  # pragma: no cover - argparse enforces the subcommand


if __name__ == "__main__":
    raise SystemExit(main())
