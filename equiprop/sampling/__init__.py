"""Exploring configurations with a model: Langevin MD (``md``), BFGS minima (``minima``), geometric bounds (``guard``)."""
