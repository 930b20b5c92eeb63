"""scikit-learn estimators for I-Con: one KL loss between neighbour distributions."""

from ._embedding import IConEmbedding

__all__ = ["IConEmbedding"]
__version__ = "0.1.0"
