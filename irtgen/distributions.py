"""Built-in distributions, drop-in replacements for torch.distributions with the same names and
parameters, plus implicit reparameterization gradients. Imports torch only (no SymPy, and Triton
only when a kernel first launches)."""

from irtgen.generated.cauchy import Cauchy
from irtgen.generated.exponential import Exponential
from irtgen.generated.gumbel import Gumbel
from irtgen.generated.kumaraswamy import Kumaraswamy
from irtgen.generated.laplace import Laplace
from irtgen.generated.logistic import Logistic
from irtgen.generated.normal import Normal
from irtgen.generated.weibull import Weibull

__all__ = [
    "Cauchy",
    "Exponential",
    "Gumbel",
    "Kumaraswamy",
    "Laplace",
    "Logistic",
    "Normal",
    "Weibull",
]
