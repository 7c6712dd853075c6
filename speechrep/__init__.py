"""speechrep: self-supervised speech representations, discrete units and voice conversion."""

__version__ = "0.1.0"
