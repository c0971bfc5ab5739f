"""What a generated module tells the runtime about its family."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from irtgen.runtime import lazy_triton


@dataclass(frozen=True)
class Family:
    """Names and flags of one generated family; formulas and kernels live in ``module``.

    Naming convention in generated modules: torch formulas ``<op>_torch`` (log_prob, cdf, sf,
    pdf, icdf, support, in_support, log_prob_grad, cdf_grad, implicit_grad, sample when the spec
    has a sampler) and Triton kernels
    ``<op>_kernel`` (log_prob, cdf, sf, icdf, sample, log_prob_backward, cdf_backward,
    implicit_backward).
    """

    name: str
    param_names: tuple[str, ...]
    module: ModuleType
    has_bounds: bool  # the support is not the whole real line
    has_icdf: bool  # closed-form icdf (otherwise numeric inversion)
    has_sampler: bool = False  # a sampler formula (``sample_torch``/``sample_tl``) draws samples
    wide_gradients: bool = False  # backward formulas run in float64 (special-function families)

    @property
    def key(self) -> str:
        """The generated module's name: how torch.library ops (irtgen.runtime.library) name
        the family."""
        return self.module.__name__

    def torch_fn(self, op: str):
        return getattr(self.module, f"{op}_torch")

    def kernel(self, op: str):
        lazy_triton.activate(self.module)
        return getattr(self.module, f"{op}_kernel")

    def __hash__(self) -> int:  # used as a non-tensor autograd input
        return hash((self.name, self.module.__name__))
