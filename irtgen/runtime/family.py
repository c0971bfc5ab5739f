"""What a generated module tells the runtime about its family, and elementwise evaluation of
its formulas on tensors."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import torch

# outputs of each formula of a generated module, by name (P: the number of parameters)
_N_OUT = {"support": lambda P: 2, "log_prob_grad": lambda P: 1 + P}
_N_OUT["cdf_grad"] = _N_OUT["implicit_grad"] = _N_OUT["log_prob_grad"]


@dataclass(frozen=True)
class Family:
    """Names and flags of one generated family; its formulas are the module's ``@scalar``
    functions: log_prob, cdf, sf, pdf, icdf, in_support, support, sample and the derivative
    tuples log_prob_grad, cdf_grad, implicit_grad (irtgen.codegen.module)."""

    name: str
    param_names: tuple[str, ...]
    module: ModuleType
    has_bounds: bool  # the support is not the whole real line
    has_icdf: bool  # closed-form icdf (otherwise numeric inversion)
    has_sampler: bool = False  # a sampler formula draws samples (otherwise icdf of a uniform)
    # what one draw transforms: "uniform" (icdf), "normal" (sample_from_normal) or None
    # (rejection variates, which draw from the Philox stream on every backend)
    base_draw: str | None = None
    wide_gradients: bool = False  # formulas with special functions: float64 on every backend

    @property
    def key(self) -> str:
        """The generated module's name: how torch.library ops (irtgen.runtime.library) name
        the family."""
        return self.module.__name__

    def fn(self, op: str):
        """The scalar function of formula ``op``."""
        return getattr(self.module, op)

    def split(self, op: str):
        """(terms, at, n) where formula ``op`` has parameter terms: ``op(x, θ)`` =
        ``at(x, θ, *terms(θ))`` with n terms (irtgen.codegen.module._hoist); else None."""
        terms = getattr(self.module, f"{op}_terms", None)
        if terms is None:
            return None
        at = getattr(self.module, f"{op}_at")
        n = at.fn.__code__.co_argcount - 1 - len(self.param_names)
        return terms, at, n

    def n_out(self, op: str) -> int:
        return _N_OUT.get(op, lambda P: 1)(len(self.param_names))

    def wide(self, op: str) -> bool:
        """Whether Triton evaluates ``op`` in float64 (numba always does)."""
        numeric_icdf = not self.has_icdf and op in ("icdf", "sample")
        return self.wide_gradients or numeric_icdf

    def evaluate(self, op: str, *tensors: torch.Tensor):
        """Formula ``op`` at broadcast tensors (value first, then the parameters; parameters
        alone for ``support``): a tensor, or a tuple for formulas with several outputs."""
        from irtgen.runtime import ops

        return ops.evaluate(self, op, tensors)

    def __hash__(self) -> int:  # used as a non-tensor autograd input
        return hash((self.name, self.module.__name__))
