"""``torch.distributions.kl_divergence`` for irtgen's built-in families.

Where torch has a closed form for a pair of its own families, the same pair of irtgen families
(or one of each) uses it: the parameters are handed to torch's classes, so the value and its
gradients are torch's closed form. Registered when ``irtgen.distributions`` is imported.
"""

from __future__ import annotations

import torch.distributions as td
from torch.distributions.kl import kl_divergence, register_kl

# irtgen families whose torch namesake (same parameters) has a registered closed-form KL
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
)


def _as_torch(d: td.Distribution) -> td.Distribution:
    """The torch namesake of an irtgen distribution, with the same parameter tensors."""
    cls = getattr(td, type(d).__name__)
    if isinstance(d, cls):  # already torch's
        return d
    return cls(**{name: getattr(d, name) for name in d.arg_constraints}, validate_args=False)


def _kl(p: td.Distribution, q: td.Distribution):
    return kl_divergence(_as_torch(p), _as_torch(q))


def register(namespace: dict) -> None:
    """Register KL(p, q) for (irtgen, irtgen), (irtgen, torch) and (torch, irtgen) pairs."""
    for name in FAMILIES:
        ours, theirs = namespace[name], getattr(td, name)
        for pair in ((ours, ours), (ours, theirs), (theirs, ours)):
            register_kl(*pair)(_kl)
