"""scikit-learn estimators for I-Con: one KL loss between neighbour distributions."""

from ._classifier import IConClassifier
from ._clustering import IConClustering, SpectralIConClustering
from ._embedding import IConEmbedding

__all__ = ["IConClassifier", "IConClustering", "IConEmbedding", "SpectralIConClustering"]
__version__ = "0.1.0"
