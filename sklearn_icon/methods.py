"""The periodic table: named methods of the I-Con paper as configured estimators.

Each entry of :data:`METHODS` records one method of Table 1 of Alshammari
et al. (ICLR 2025): its supervisory distribution ``p``, its learned
distribution ``q``, the estimator and parameters that compute exactly that
loss here, and the theorem that makes it an instance of I-Con. A researcher
names a method, gets the configured estimator, and changes one ingredient
(a kernel, ``alpha``, a walk) to make a new one::

    >>> from sklearn_icon.methods import make_method
    >>> make_method("tsne", perplexity=50).perplexity
    50

Only methods whose loss these estimators compute exactly are listed; the
table in the documentation is generated from this registry.
"""

from dataclasses import dataclass, field
from types import MappingProxyType

from ._classifier import IConClassifier
from ._clustering import KMEANS_PRESET, IConClustering, SpectralIConClustering
from ._embedding import IConEmbedding

__all__ = ["METHODS", "Method", "SpectralIConClustering", "make_method", "method_table"]




@dataclass(frozen=True)
class Method:
    """One method of the periodic table.

    Parameters
    ----------
    name : str
        Registry key, as passed to :func:`make_method`.
    title : str
        The method's usual name.
    family : str
        Column of the paper's Table 1: dimensionality reduction,
        contrastive learning, supervised learning or clustering.
    supervisory : str
        The supervisory distribution ``p(j|i)``, in words.
    learned : str
        The learned distribution ``q(j|i)``, in words.
    estimator : type
        The estimator class that fits it.
    params : mapping
        Constructor parameters that make the estimator this method.
    fit_with : str
        What :meth:`fit` needs beyond ``X``.
    theorem : str
        Where the paper shows it is an instance of I-Con.
    reference : str
        The method's original publication.

    Examples
    --------
    >>> from sklearn_icon.methods import METHODS
    >>> METHODS["supcon"].theorem
    'Theorem 6'
    """

    name: str
    title: str
    family: str
    supervisory: str
    learned: str
    estimator: type
    params: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    fit_with: str = "X"
    theorem: str = ""
    reference: str = ""

    def make(self, **overrides):
        """The configured estimator, with ``overrides`` replacing or adding parameters.

        Parameters
        ----------
        **overrides
            Any constructor parameter of :attr:`estimator`.

        Returns
        -------
        estimator
            A new, unfitted estimator.

        Examples
        --------
        >>> from sklearn_icon.methods import METHODS
        >>> METHODS["ncut"].make(n_clusters=3).learned
        'cluster_degree'
        """
        return self.estimator(**{**self.params, **overrides})


def _method(name, title, family, supervisory, learned, estimator, params=None, **details):
    return Method(name, title, family, supervisory, learned, estimator, MappingProxyType(dict(params or {})), **details)


_CONTRASTIVE = dict(normalization="conditional", label_weight=1.0, mapper="mlp", early_exaggeration=1.0)

#: Every method, by name; aliases (``simclr``) point at the same entry.
METHODS = {
    method.name: method
    for method in [
        _method(
            "sne",
            "SNE",
            "dimensionality reduction",
            "Gaussian on the data, bandwidth per point calibrated to a perplexity",
            "Gaussian on the embedding, exp(-|y_i - y_j|^2), normalised per point",
            IConEmbedding,
            dict(learned="gaussian", normalization="conditional"),
            theorem="Theorem 1",
            reference="Hinton & Roweis, 2002",
        ),
        _method(
            "tsne",
            "t-SNE",
            "dimensionality reduction",
            "Gaussian on the data, perplexity-calibrated, symmetrised into a joint distribution",
            "Cauchy (Student-t, 1 dof) on the embedding, normalised over all pairs",
            IConEmbedding,
            theorem="Corollary 1",
            reference="Van der Maaten & Hinton, 2008",
        ),
        _method(
            "pca",
            "PCA",
            "dimensionality reduction",
            "each point its own only neighbour, 1[i = j]",
            "Gaussian of squared width 100 (the data scaled to unit total variance), self included; "
            "an orthonormal linear map",
            IConEmbedding,
            dict(
                supervisory="identity",
                learned="gaussian",
                temperature=100.0,
                normalization="conditional",
                mapper="orthonormal",
                init="random",
                early_exaggeration=1.0,
                early_exaggeration_iter=0,
                learning_rate=0.05,
                max_iter=100,
            ),
            theorem="Theorem 2",
            reference="Pearson, 1901",
        ),
        _method(
            "infonce",
            "InfoNCE / SimCLR",
            "contrastive learning",
            "uniform over the other views of the same item (groups)",
            "exp(cos(f_i, f_j) / temperature), normalised per point",
            IConEmbedding,
            dict(learned="cosine", n_components=16, **_CONTRASTIVE),
            fit_with="X, groups",
            theorem="Theorem 3",
            reference="Bachman et al., 2019; Chen et al., 2020",
        ),
        _method(
            "tsimclr",
            "t-SimCLR / t-SimCNE",
            "contrastive learning",
            "uniform over the other views of the same item (groups)",
            "Cauchy (Student-t, 1 dof) on the features, normalised per point",
            IConEmbedding,
            dict(learned="student_t", **_CONTRASTIVE),
            fit_with="X, groups",
            theorem="Corollary 2",
            reference="Hu et al., 2023; Böhm et al., 2023",
        ),
        _method(
            "supcon",
            "SupCon",
            "contrastive learning",
            "uniform over the other samples of the same class (y)",
            "exp(cos(f_i, f_j) / temperature), normalised per point",
            IConEmbedding,
            dict(learned="cosine", n_components=16, **_CONTRASTIVE),
            fit_with="X, y",
            theorem="Theorem 6",
            reference="Khosla et al., 2020",
        ),
        _method(
            "cross_entropy",
            "cross-entropy (softmax) classification",
            "supervised learning",
            "indicator of the sample's class",
            "exp(f_i . w_c + b_c) over class prototypes w_c",
            IConClassifier,
            fit_with="X, y",
            theorem="Theorem 9",
            reference="Good, 1963",
        ),
        _method(
            "harmonic",
            "harmonic loss",
            "supervised learning",
            "indicator of the sample's class",
            "|f_i - w_c|^(-exponent) over class prototypes w_c",
            IConClassifier,
            dict(learned="harmonic", mapper="mlp"),
            fit_with="X, y",
            theorem="Theorem 10",
            reference="Baek et al., 2025",
        ),
        _method(
            "kmeans",
            "probabilistic k-means (c-SNE)",
            "clustering",
            "Gaussian of one bandwidth on the data, over all points (self included)",
            "shared cluster: sum_c phi_ic phi_jc / sum_k phi_kc; the reverse divergence KL(q || p)",
            IConClustering,
            KMEANS_PRESET,
            theorem="Theorem 13",
            reference="MacQueen, 1967",
        ),
        _method(
            "spectral",
            "spectral clustering",
            "clustering",
            "the k-means instance's Gaussian, on the k-NN graph's spectral embedding",
            "shared cluster: sum_c phi_ic phi_jc / sum_k phi_kc; the reverse divergence KL(q || p)",
            SpectralIConClustering,
            theorem="Corollary 4",
            reference="Shi & Malik, 2000; Ng et al., 2001",
        ),
        _method(
            "pmi_clustering",
            "PMI clustering",
            "clustering",
            "uniform over the k nearest neighbours",
            "shared cluster: sum_c phi_ic phi_jc / sum_k phi_kc",
            IConClustering,
            dict(affinity="nearest_neighbors", n_walk_steps=0),
            theorem="Theorem 15",
            reference="Adaloglou et al., 2023",
        ),
        _method(
            "ncut",
            "normalized cuts",
            "clustering",
            "the k-NN graph's random walk (row-normalised affinities)",
            "shared cluster weighted by degree: sum_c phi_ic phi_jc d_j / sum_k phi_kc d_k",
            IConClustering,
            dict(affinity="nearest_neighbors", learned="cluster_degree", n_walk_steps=0),
            theorem="Theorem 14",
            reference="Shi & Malik, 2000",
        ),
        _method(
            "debiased_infonce_clustering",
            "debiased InfoNCE clustering",
            "clustering",
            "k-NN graph widened by walks, (1 - alpha) p~ + alpha / N",
            "shared cluster, debiased by alpha_q",
            IConClustering,
            dict(affinity="nearest_neighbors", n_walk_steps=1, alpha=0.6, alpha_q=0.6),
            theorem="Section 4",
            reference="Alshammari et al., 2025",
        ),
    ]
}
METHODS["simclr"] = METHODS["infonce"]


def make_method(name, **overrides):
    """A configured estimator for a named method of the periodic table.

    Parameters
    ----------
    name : str
        A key of :data:`METHODS`.
    **overrides
        Constructor parameters that replace or add to the method's own.

    Returns
    -------
    estimator
        A new, unfitted :class:`~sklearn_icon.IConEmbedding`,
        :class:`~sklearn_icon.IConClustering`,
        :class:`~sklearn_icon.IConClassifier` or
        :class:`SpectralIConClustering`.

    Raises
    ------
    ValueError
        If ``name`` is not a known method.

    Examples
    --------
    >>> from sklearn_icon.methods import make_method
    >>> model = make_method("debiased_infonce_clustering", n_clusters=10)
    >>> model.alpha, model.n_clusters
    (0.6, 10)
    """
    try:
        method = METHODS[name]
    except KeyError:
        raise ValueError(f"Unknown method {name!r}; expected one of {sorted(METHODS)}.") from None
    return method.make(**overrides)


def method_table():
    """One row per method (aliases once), in the paper's order, as dictionaries.

    Returns
    -------
    list of dict
        Keys ``name``, ``title``, ``family``, ``supervisory``, ``learned``,
        ``estimator`` (the class name), ``params``, ``fit_with``,
        ``theorem`` and ``reference``.

    Examples
    --------
    >>> from sklearn_icon.methods import method_table
    >>> [row["name"] for row in method_table()][:2]
    ['sne', 'tsne']
    """
    rows = []
    for name, method in METHODS.items():
        if name != method.name:
            continue
        rows.append(
            dict(
                name=method.name,
                title=method.title,
                family=method.family,
                supervisory=method.supervisory,
                learned=method.learned,
                estimator=method.estimator.__name__,
                params=dict(method.params),
                fit_with=method.fit_with,
                theorem=method.theorem,
                reference=method.reference,
            )
        )
    return rows
