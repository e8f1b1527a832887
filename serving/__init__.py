"""rasid inference core: normalisation, the bundle format, the predictor, and the HTTP service."""

__version__ = "0.1.0"
