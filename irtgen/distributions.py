"""Built-in distributions, drop-in replacements for torch.distributions with the same names and
parameters, plus implicit reparameterization gradients. Imports torch only (no SymPy, and Triton
only when a kernel first launches)."""

from irtgen.composite.dirichlet import Dirichlet
from irtgen.composite.empirical import Empirical
from irtgen.composite.factorized import Factorized
from irtgen.composite.mixture import MixtureSameFamily
from irtgen.composite.truncated import Truncated
from irtgen.generated.beta import Beta
from irtgen.generated.cauchy import Cauchy
from irtgen.generated.chi2 import Chi2
from irtgen.generated.exponential import Exponential
from irtgen.generated.gamma import Gamma
from irtgen.generated.gumbel import Gumbel
from irtgen.generated.half_normal import HalfNormal
from irtgen.generated.inverse_gamma import InverseGamma
from irtgen.generated.kumaraswamy import Kumaraswamy
from irtgen.generated.laplace import Laplace
from irtgen.generated.log_normal import LogNormal
from irtgen.generated.logistic import Logistic
from irtgen.generated.normal import Normal
from irtgen.generated.student_t import StudentT
from irtgen.generated.weibull import Weibull
from irtgen.kl import register as _register_kl

__all__ = [
    "Beta",
    "Cauchy",
    "Chi2",
    "Dirichlet",
    "Empirical",
    "Exponential",
    "Factorized",
    "Gamma",
    "Gumbel",
    "HalfNormal",
    "InverseGamma",
    "Kumaraswamy",
    "Laplace",
    "LogNormal",
    "Logistic",
    "MixtureSameFamily",
    "Normal",
    "StudentT",
    "Truncated",
    "Weibull",
]

_register_kl(globals())
