"""irtgen: compile symbolic CDFs into fused kernels with implicit reparameterization gradients.

Spec-side names (``Distribution``, ``truncate``, ``load``, ``build_spec``, ``functions``,
``variates``) import SymPy on first use; ``import irtgen.distributions`` and
``import irtgen.special`` need only torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Distribution": ("irtgen.spec", "Distribution"),
    "SpecError": ("irtgen.spec", "SpecError"),
    "load": ("irtgen.build", "load"),
    "build_spec": ("irtgen.build", "build_spec"),
    "BuildError": ("irtgen.build", "BuildError"),
    "truncate": ("irtgen.truncate", "truncate"),
    "functions": ("irtgen.functions", None),
    "variates": ("irtgen.variates", None),
    "special": ("irtgen.special", None),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        value = mod if attr is None else getattr(mod, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'irtgen' has no attribute {name!r}")
