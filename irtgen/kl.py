"""``torch.distributions.kl_divergence`` for irtgen's built-in families.

Wherever torch has a closed form for a pair of its own classes, the same pair with an irtgen
family on either side or both uses it: the irtgen side is handed to torch's namesake with the
same parameter tensors, so the value and its gradients are torch's closed form. That covers the
same-family pairs and the cross-family ones torch registers (Gamma‖Exponential, Beta‖Uniform,
Normal‖Laplace, Chi2‖Gamma through torch's Chi2 being a Gamma, ...); a pair torch has no
closed form for raises torch's NotImplementedError. Registered when ``irtgen.distributions`` is
imported.

torch's classes are captured when this module is imported, so code that later rebinds
``torch.distributions.Normal`` to irtgen's class (a common way to switch a codebase over) still
reaches torch's own formulas.
"""

from __future__ import annotations

import torch.distributions as td
from torch.distributions.kl import _KL_REGISTRY, kl_divergence, register_kl

# irtgen families with a torch namesake (same parameter names)
FAMILIES = (
    "Normal",
    "Gamma",
    "Beta",
    "Exponential",
    "Laplace",
    "Gumbel",
    "HalfNormal",
    "LogNormal",
    "Chi2",
    "InverseGamma",
    "Cauchy",
    "StudentT",
    "Weibull",
    "Kumaraswamy",
)
# abstract classes of torch's registry: never a side of a registration here
_ABSTRACT = ("ExponentialFamily", "TransformedDistribution", "Distribution", "Independent")


def _torch_class(name: str) -> type | None:
    cls = getattr(td, name, None)
    if isinstance(cls, type) and cls.__module__.startswith("torch.distributions"):
        return cls
    for pair in _KL_REGISTRY:  # td.<name> already rebound: torch's class from the registry
        for c in pair:
            if c.__name__ == name and c.__module__.startswith("torch.distributions"):
                return c
    return None


TORCH = {name: cls for name in FAMILIES if (cls := _torch_class(name)) is not None}
# every concrete torch class that takes part in a registered closed form
_PARTNERS = sorted(
    {c for pair in _KL_REGISTRY for c in pair if c.__name__ not in _ABSTRACT},
    key=lambda c: c.__name__,
)


def _as_torch(d: td.Distribution) -> td.Distribution:
    """``d`` itself if it is not an irtgen family, else its torch namesake with the same
    parameter tensors."""
    cls = TORCH.get(type(d).__name__)
    if cls is None or isinstance(d, cls) or not type(d).__module__.startswith("irtgen."):
        return d
    return cls(**{name: getattr(d, name) for name in d.arg_constraints}, validate_args=False)


def _kl(p: td.Distribution, q: td.Distribution):
    return kl_divergence(_as_torch(p), _as_torch(q))


def register(namespace: dict) -> None:
    """Register KL(p, q) for every irtgen family against every irtgen family and every torch
    class of torch's registry (and its namesake), in both orders."""
    ours = [namespace[name] for name in FAMILIES if name in TORCH]
    theirs = sorted(set(_PARTNERS) | set(TORCH.values()), key=lambda c: c.__name__)
    for a in ours:
        for b in ours:
            register_kl(a, b)(_kl)
        for b in theirs:
            register_kl(a, b)(_kl)
            register_kl(b, a)(_kl)
