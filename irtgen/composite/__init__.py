"""Distributions composed from generated families: mixtures, Dirichlet, factorized joints and a
smoothed empirical distribution. Their gradients come from the families' derived formulas."""
