"""The two compilers of the one source (irtgen.scalar): numba for the CPU, Triton for the GPU.

``bind`` turns a ``@scalar`` function into a numba or a Triton function; ``numba_tl`` is the
``tl`` that scalar code sees under numba; ``cpu`` and ``gpu`` hold the kernel skeletons, written
once and specialised on a family's scalar formulas.
"""

# The formulas the mixture backward kernels (cpu.mixture_backward, gpu.mixture_backward_kernel)
# take, by the global or constexpr name they are bound to
MIXTURE_FORMULAS = {
    "LOG_PROB": "log_prob",
    "CDF": "cdf",
    "SF": "sf",
    "LOG_PROB_GRAD": "log_prob_grad",
    "IMPLICIT_GRAD": "implicit_grad",
    "INSIDE": "in_support",
}
