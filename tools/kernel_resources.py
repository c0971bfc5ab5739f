"""Registers and local-memory stack of every family kernel of the one-source path, compiled for
sm_90 without a GPU (``cuobjdump --dump-resource-usage`` on the cubin Triton builds).

    python tools/kernel_resources.py [--families Normal Gamma ...] [--dtypes fp32 fp64]

Renders each built-in spec's scalar formulas (irtgen.codegen.module.render_scalar_module) into a
temporary folder, specialises the Triton family kernels of irtgen.compilers.gpu on them and
prints one markdown row per (family, kernel, dtype). Run without TRITON_INTERPRET.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from irtgen.build import builtin_spec_dir, load_spec_file  # noqa: E402
from irtgen.codegen.module import _uses_special_functions, render_scalar_module  # noqa: E402
from irtgen.derive import derive  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="*", help="family names (default: all built-ins)")
    ap.add_argument("--dtypes", nargs="*", default=["fp32", "fp64"])
    args = ap.parse_args()
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        sys.exit("unset TRITON_INTERPRET: interpreted kernels cannot be compiled")
    from irtgen.compilers import gpu

    tmp = Path(tempfile.mkdtemp(prefix="irtgen-resources-"))
    print("| family | kernel | dtype | registers | stack (bytes) |")
    print("|---|---|---|---|---|")
    for spec_path in sorted(builtin_spec_dir().glob("*.py")):
        if spec_path.name == "__init__.py":
            continue
        for dist in load_spec_file(spec_path):
            if args.families and dist.name not in args.families:
                continue
            d = derive(dist)
            path = tmp / f"resources_{dist.snake_name}.py"
            path.write_text(render_scalar_module(d, spec_path.name, "tools/kernel_resources.py"))
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
            wide = _uses_special_functions(d)
            for dtype in args.dtypes:
                table = gpu.family_kernel_resources(module, len(d.param_names), dtype, wide)
                for kernel, r in table.items():
                    row = [dist.name, kernel, dtype, r["registers"], r["stack"]]
                    print("| " + " | ".join(str(v) for v in row) + " |", flush=True)


if __name__ == "__main__":
    main()
