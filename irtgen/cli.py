"""Command line: ``irtgen build SPEC.py [-o DIR]``, ``irtgen build --builtins``, ``--check``,
``irtgen show SPEC.py [--latex]``, ``irtgen plot SPEC.py --param NAME=VALUE ... [-o FILE]``."""

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
    b.add_argument(
        "--max-error",
        default=None,
        metavar="F64[,F32]",
        help="fail the build where the accuracy audit finds a relative error above F64 in "
        "float64 (and F32 in float32); overrides a spec's max_error",
    )
    b.add_argument(
        "--no-rewrites",
        action="store_true",
        help="generate the formulas as derived, without the rewrite rules (to see what the "
        "rules change; the accuracy audit measures both)",
    )
    b.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    b.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    _add_show_plot(sub)
    return parser


def _add_show_plot(sub) -> None:
    s = sub.add_parser(
        "show",
        help="print the derived density, log-density and implicit gradients of a spec",
        description="Print, for every distribution in a spec file (or only --name), its "
        "support, parameters and constraints, how it samples, and the derived CDF, density q, "
        "log q and implicit gradient dz/dθ = −(∂F/∂θ)/q of every parameter.",
    )
    s.add_argument("spec", type=Path, help="spec file (Python, SymPy)")
    s.add_argument("--name", default=None, help="only the distribution of this name")
    s.add_argument("--latex", action="store_true", help="print the formulas as LaTeX")
    s.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    p = sub.add_parser(
        "plot",
        help="plot density, CDF and implicit gradients at given parameter values",
        description="Draw one figure (density with a histogram of samples, CDF, and dz/dθ per "
        "parameter with finite-difference checks) computed by the generated torch code in "
        'float64. Needs matplotlib: pip install "irtgen[plot]".',
    )
    p.add_argument("spec", type=Path, help="spec file (Python, SymPy)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter value (repeat for each parameter; those with defaults may be omitted)",
    )
    p.add_argument(
        "--name", default=None, help="the distribution to plot (when the file has several)"
    )
    p.add_argument(
        "-o", "--output", type=Path, default=None, help="image file (default: <snake_name>.png)"
    )
    p.add_argument(
        "--samples",
        type=int,
        default=20_000,
        help="draws in the histogram of the density panel (0: none; default 20000)",
    )
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")


def _report(quiet: bool):
    def progress(result):
        if quiet and result.status in ("written", "unchanged"):
            return
        t = result.seconds
        print(
            f"{result.name:>16s}  {result.status:9s} {result.path}  "
            f"(derive {t.get('derive', 0):.2f} s, generate {t.get('generate', 0):.2f} s, "
            f"check {t.get('check', 0):.2f} s, audit {t.get('audit', 0):.2f} s, "
            f"write {t.get('write', 0):.3f} s)"
        )
        if result.audit is not None:
            print(f"{'':>16s}  {result.audit.line()}")

    return progress


def _build(args) -> int:
    from irtgen.build import BuildError, build_builtins, build_spec

    if not args.specs and not args.builtins:
        print("irtgen build: give spec files or --builtins", file=sys.stderr)
        return EXIT_ERROR
    if args.builtins and args.no_rewrites:
        print("irtgen build: --no-rewrites is for your own specs, not --builtins", file=sys.stderr)
        return EXIT_ERROR
    from irtgen.audit import parse_tolerance

    try:
        parse_tolerance(args.max_error, "--max-error")
    except ValueError as err:
        return _error(err, args.debug)
    progress = _report(args.quiet)
    results, orphans = [], []
    try:
        if args.builtins:
            r, orphans = build_builtins(
                check=args.check, progress=progress, max_error=args.max_error
            )
            results += r
        out = args.output if args.output is not None else Path("generated")
        for spec in args.specs:
            results += build_spec(
                spec,
                out,
                check=args.check,
                progress=progress,
                max_error=args.max_error,
                rewrite=not args.no_rewrites,
            )
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
    if not args.quiet and results:
        cost = sum(r.seconds.get("audit", 0) for r in results)
        total = sum(sum(v for v in r.seconds.values()) for r in results)
        print(f"irtgen: the accuracy audit took {cost:.1f} s of {total:.1f} s")
    return EXIT_OK


def _show(args) -> int:
    from irtgen.build import BuildError
    from irtgen.show import show_spec

    problems: list[str] = []
    try:
        text = show_spec(args.spec, name=args.name, latex=args.latex, problems=problems)
    except BuildError as err:
        return _error(err, args.debug)
    sys.stdout.write(text)
    for problem in problems:  # what irtgen build would refuse the spec for
        print(f"irtgen: error: {problem} (irtgen build refuses this spec)", file=sys.stderr)
    return EXIT_ERROR if problems else EXIT_OK


def _plot(args) -> int:
    from irtgen.build import BuildError
    from irtgen.plot import PlotError, plot_spec

    if args.samples < 0:
        return _error(ValueError("--samples must be 0 or more"), args.debug)
    try:
        out = plot_spec(args.spec, args.param, args.output, name=args.name, samples=args.samples)
    except (BuildError, PlotError) as err:
        return _error(err, args.debug)
    print(f"irtgen: wrote {out}")
    return EXIT_OK


def _error(err: Exception, debug: bool) -> int:
    """One line ``irtgen: error: ...`` on stderr (with the traceback under --debug); exit 2."""
    if debug and err.__traceback__ is not None:
        traceback.print_exception(err)
    print(f"irtgen: error: {err}", file=sys.stderr)
    return EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "build":
        return _build(args)
    if args.command == "show":
        return _show(args)
    if args.command == "plot":
        return _plot(args)
    return EXIT_ERROR  # pragma: no cover - argparse enforces the subcommand


if __name__ == "__main__":
    raise SystemExit(main())
