"""Random numbers for samplers, drawn from torch's generators.

Both backends turn 23 (float32) or 52 (float64) random bits k into the uniform (k + 1/2) 2^-bits,
which lies strictly inside (0, 1) and is exact in the dtype, so an icdf never sees 0 or 1.
The torch path draws k with ``torch.randint``; the Triton path draws a Philox seed from the same
generator and computes k in the kernel (``triton_math.uniform``). Either way
``torch.manual_seed`` (or a ``generator=``) makes samples reproducible on a device.
"""

from __future__ import annotations

import torch

_BITS = {torch.float32: 23, torch.float64: 52}


def default_generator(device: torch.device) -> torch.Generator:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.cuda.default_generators[index]
    return torch.default_generator


def uniform(shape, dtype: torch.dtype, device: torch.device, generator=None) -> torch.Tensor:
    """Uniforms in the open interval (0, 1), exact in ``dtype`` (float32 or float64)."""
    bits = _BITS[dtype]
    k = torch.randint(
        0, 1 << bits, tuple(shape), dtype=torch.int64, device=device, generator=generator
    )
    return (k.to(dtype) + 0.5) * (2.0**-bits)


def philox_seed(device: torch.device, generator=None) -> int:
    """A 62-bit seed for Triton's Philox, advancing ``generator`` (default: the device's)."""
    gen = generator if generator is not None else default_generator(device)
    return int(torch.randint(0, 1 << 62, (), dtype=torch.int64, device=gen.device, generator=gen))
