"""Built-in distributions as ordinary spec files; ``irtgen build --builtins`` turns them into
``generated/``."""
