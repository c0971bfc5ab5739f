"""A smoothed empirical distribution: a uniform mixture of kernels centred at the data points.

    q(z) = (1/N) sum_i k((z - x_i)/h)/h,     F(z) = (1/N) sum_i K((z - x_i)/h)

Samples carry implicit gradients to every data point and to the bandwidth (the mixture formulas
of ``irtgen.composite.mixture`` with equal weights):

    dz/dx_i = rho_i(z),    dz/dh = sum_i rho_i(z) (z - x_i)/h,    rho_i = k_i(z)/sum_j k_j(z)

so "differentiate through the distribution of my data" needs no hand-written gradient. The
backward never holds a samples x data points tensor (the mixture's fused kernels keep one
sample's data points at a time; on Triton, more points than one tile takes run as tensor code
over chunks of samples), so thousands of data points and samples are fine.
"""

from __future__ import annotations

import torch
from torch.distributions import Categorical

from irtgen.composite.mixture import MixtureSameFamily
from irtgen.runtime import launch
from irtgen.runtime.distribution import GeneratedDistribution


class Empirical(MixtureSameFamily):
    """Kernel-smoothed empirical distribution of ``data`` with bandwidth ``bandwidth``.

    Args:
        data: tensor of shape B + (N,): N data points per batch element (N >= 1).
        bandwidth: positive, broadcastable to B (one bandwidth per batch element).
        kernel: a generated location-scale family class with parameters (loc, scale); the
            default is irtgen's Normal. Logistic, Laplace, Cauchy and Gumbel also qualify.
        validate_args: as in torch.
    """

    def __init__(self, data, bandwidth, kernel=None, validate_args=None):
        if kernel is None:
            from irtgen.distributions import Normal as kernel
        if not (isinstance(kernel, type) and issubclass(kernel, GeneratedDistribution)):
            raise TypeError(
                f"Empirical: kernel must be an irtgen distribution class, got {kernel!r}"
            )
        if kernel.family.param_names != ("loc", "scale"):
            raise ValueError(
                f"Empirical: kernel {kernel.__name__} must have parameters (loc, scale), "
                f"it has {kernel.family.param_names}"
            )
        data = torch.as_tensor(data)
        if not data.dtype.is_floating_point:
            data = data.to(torch.get_default_dtype())
        if data.dim() == 0 or data.shape[-1] == 0:
            raise ValueError(
                f"Empirical: data needs at least one point, got shape {tuple(data.shape)}"
            )
        bandwidth = torch.as_tensor(bandwidth, dtype=data.dtype, device=data.device)
        if validate_args and not bool((bandwidth > 0).all()):
            raise ValueError("Empirical: bandwidth must be positive")
        if validate_args and not bool(torch.isfinite(data).all()):
            raise ValueError("Empirical: data must be finite")
        self.data, self.bandwidth = data, bandwidth
        batch = launch.broadcast_shapes(data.shape[:-1], bandwidth.shape)
        weights = torch.zeros(batch + data.shape[-1:], dtype=data.dtype, device=data.device)
        components = kernel(data, bandwidth.unsqueeze(-1), validate_args=validate_args)
        super().__init__(Categorical(logits=weights), components, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Empirical, _instance)
        batch_shape = torch.Size(batch_shape)
        new.data = self.data.expand(batch_shape + self.data.shape[-1:])
        new.bandwidth = self.bandwidth.expand(batch_shape)
        return super().expand(batch_shape, _instance=new)
