"""Registers and local-memory stack of every family kernel, compiled for sm_90 without a GPU
(``cuobjdump --dump-resource-usage`` on the cubin Triton builds).

    python tools/kernel_resources.py [--families Normal Gamma ...] [--dtypes fp32 fp64]
    python tools/kernel_resources.py --spec my_spec.py      # a user's families

Specialises the Triton family kernels of irtgen.compilers.gpu on each built-in family's formulas
(generated/) or on a spec's, and prints one markdown row per (family, kernel, dtype) with the
targets: at most 128 registers for float32 computation and 168 for float64 (special-function
families compute in float64 whatever the data's dtype), no stack beyond the 40 bytes of the
trigonometric argument reduction. Run without TRITON_INTERPRET.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REGISTERS = {"fp32": 128, "fp64": 168}
STACK = 40


def families(names=None, spec=None):
    import irtgen
    from irtgen.build import builtin_spec_dir, load_spec_file

    if spec is not None:
        ns = irtgen.load(spec)
        return [getattr(ns, n).family for n in vars(ns) if hasattr(getattr(ns, n), "family")]
    out = []
    for path in sorted(builtin_spec_dir().glob("*.py")):
        if path.name == "__init__.py":
            continue
        for dist in load_spec_file(path):
            if not names or dist.name in names:
                module = importlib.import_module(f"irtgen.generated.{dist.snake_name}")
                out.append(module.FAMILY)
    return out


def rows(fams, dtypes=("fp32", "fp64")):
    """(family, kernel, dtype, registers, stack, within targets) for every kernel."""
    from irtgen.compilers import gpu

    for family in fams:
        for dtype in dtypes:
            for kernel, r in gpu.family_kernel_resources(family, dtype).items():
                # the register budget follows the dtype the kernel computes in: float64 for
                # special-function formulas and numeric inversion, whatever the data's dtype
                op = kernel.split()[0]
                compute = "fp64" if family.wide(op) else dtype
                ok = r["registers"] <= REGISTERS[compute] and r["stack"] <= STACK
                yield family.name, kernel, dtype, r["registers"], r["stack"], ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="*", help="built-in family names (default: all)")
    ap.add_argument("--spec", help="a spec file: its families instead of the built-ins")
    ap.add_argument("--dtypes", nargs="*", default=["fp32", "fp64"])
    args = ap.parse_args()
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        sys.exit("unset TRITON_INTERPRET: interpreted kernels cannot be compiled")
    print("| family | kernel | dtype | registers | stack (bytes) | within targets |")
    print("|---|---|---|---|---|---|")
    for name, kernel, dtype, regs, stack, ok in rows(
        families(args.families, args.spec), args.dtypes
    ):
        print(
            f"| {name} | {kernel} | {dtype} | {regs} | {stack} | {'yes' if ok else 'NO'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
