"""Bad and degenerate input: every case works with finite output or raises a clear error, and a
failed fit loses nothing."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sklearn_icon._classifier as classifier_module
import sklearn_icon._clustering as clustering_module
import sklearn_icon._embedding as embedding_module
from sklearn_icon import IConClassifier, IConClustering, IConEmbedding
from sklearn_icon._backend.affinities import supervisory_distribution
from sklearn_icon._backend.divergence import debias
from sklearn_icon._backend.kernels.cluster import cluster_log_q_dense
from sklearn_icon._backend.kernels.distance import log_kernel_matrix, log_q_from_log_kernel
from sklearn_icon._backend.kernels.prototypes import debias_log_q, prototype_logits

CPU = dict(device="cpu", random_state=0)
FAST_EMBEDDING = dict(perplexity=5, max_iter=60, early_exaggeration_iter=20, **CPU)

#: (id, factory) for each estimator's main configurations: every learned kernel and mapper.
CONFIGURATIONS = [
    ("embedding-table-student_t", lambda: IConEmbedding(**FAST_EMBEDDING)),
    (
        "embedding-table-gaussian-knn-conditional",
        lambda: IConEmbedding(
            learned="gaussian", supervisory="knn", n_neighbors=5, normalization="conditional", **FAST_EMBEDDING
        ),
    ),
    ("embedding-fft", lambda: IConEmbedding(method="fft", **FAST_EMBEDDING)),
    ("embedding-linear-alpha", lambda: IConEmbedding(mapper="linear", alpha=0.2, **FAST_EMBEDDING)),
    (
        "embedding-mlp-cosine",
        lambda: IConEmbedding(mapper="mlp", learned="cosine", hidden_layer_sizes=(8,), **FAST_EMBEDDING),
    ),
    ("embedding-approximate-neighbours", lambda: IConEmbedding(neighbors="approximate", **FAST_EMBEDDING)),
    ("clustering-linear", lambda: IConClustering(n_clusters=3, n_neighbors=5, n_init=1, max_iter=40, **CPU)),
    (
        "clustering-mlp-degree-alpha",
        lambda: IConClustering(
            n_clusters=3, n_neighbors=5, learned="cluster_degree", mapper="mlp", hidden_layer_sizes=(8,),
            alpha=0.2, n_init=1, max_iter=40, **CPU,
        ),
    ),
    ("clustering-table", lambda: IConClustering(n_clusters=3, n_neighbors=5, mapper="table", n_init=1, max_iter=40, **CPU)),
    (
        "clustering-kmeans-reverse",
        lambda: IConClustering(n_clusters=3, affinity="gaussian", divergence="reverse", n_init=1, max_iter=40, **CPU),
    ),
    (
        "clustering-approximate-neighbours",
        lambda: IConClustering(n_clusters=3, n_neighbors=5, neighbors="approximate", n_init=1, max_iter=40, **CPU),
    ),
    ("classifier-linear-softmax", lambda: IConClassifier(**CPU)),
    ("classifier-linear-cosine-alpha", lambda: IConClassifier(learned="cosine", alpha=0.1, **CPU)),
    (
        "classifier-mlp-harmonic",
        lambda: IConClassifier(mapper="mlp", learned="harmonic", hidden_layer_sizes=(8,), max_iter=20, **CPU),
    ),
]
IDS = [name for name, _ in CONFIGURATIONS]
FACTORIES = [factory for _, factory in CONFIGURATIONS]

rng = np.random.default_rng(0)
BASE = rng.normal(size=(40, 5))
LABELS = np.arange(40) % 3


def fit_outputs(estimator, X, y=LABELS):
    """Fit, then every output a user reads, as float arrays."""
    y = y[: X.shape[0]]
    if isinstance(estimator, IConClassifier):
        estimator.fit(X, y)
        outputs = [estimator.predict_proba(X), estimator.predict_log_proba(X)]
        np.testing.assert_allclose(outputs[0].sum(1), 1.0)
    elif isinstance(estimator, IConEmbedding):
        outputs = [estimator.fit_transform(X), [estimator.kl_divergence_]]
        if hasattr(estimator, "transform"):
            outputs.append(estimator.transform(X))
    else:
        labels = estimator.fit_predict(X)
        assert labels.min() == 0 and np.array_equal(np.unique(labels), np.arange(labels.max() + 1))
        outputs = [labels, [estimator.loss_]]
        if hasattr(estimator, "predict_proba"):
            outputs.append(estimator.predict_proba(X))
    return [np.asarray(output, dtype=np.float64) for output in outputs]


DEGENERATE_BUT_VALID = {
    "all identical points": np.ones((40, 5)),
    "duplicated rows": np.vstack([BASE[:20], BASE[:20]]),
    "scaled by 1e-30": BASE * 1e-30,
    "scaled by 1e30": BASE * 1e30,
    "constant column": np.hstack([BASE, np.full((40, 1), 3.0)]),
    "one feature": BASE[:, :1],
    "float32": BASE.astype(np.float32),
}


@pytest.mark.parametrize("case", list(DEGENERATE_BUT_VALID))
@pytest.mark.parametrize("make", FACTORIES, ids=IDS)
def test_degenerate_data_gives_finite_output(make, case):
    for output in fit_outputs(make(), DEGENERATE_BUT_VALID[case]):
        assert np.isfinite(output).all()


def _with(value, position=7):
    X = BASE.copy()
    X.flat[position] = value
    return X


INVALID = {
    "NaN": (_with(np.nan), "NaN"),
    "+inf": (_with(np.inf), "infinity"),
    "-inf": (_with(-np.inf), "infinity"),
    "empty": (np.empty((0, 5)), "0 sample"),
    "1-D": (BASE[:, 0], "Expected 2D array"),
    "strings": (np.full((40, 5), "a", dtype=object), "convert string to float"),
}


@pytest.mark.parametrize("case", list(INVALID))
@pytest.mark.parametrize("make", FACTORIES, ids=IDS)
def test_invalid_data_is_named(make, case):
    X, message = INVALID[case]
    with pytest.raises(ValueError, match=message):
        fit_outputs(make(), X)


@pytest.mark.parametrize("make", FACTORIES, ids=IDS)
def test_one_sample_is_refused_with_a_reason(make):
    with pytest.raises(ValueError, match="1 sample|two classes"):
        fit_outputs(make(), BASE[:1])


@pytest.mark.parametrize("make", FACTORIES, ids=IDS)
def test_fit_leaves_the_global_generator_alone(make):
    """Seeds are local: a fit neither reads nor moves torch's global random state."""
    state = torch.get_rng_state()
    first = fit_outputs(make(), BASE)
    torch.testing.assert_close(torch.get_rng_state(), state)
    torch.manual_seed(7)
    for ours, again in zip(first, fit_outputs(make(), BASE)):
        np.testing.assert_array_equal(ours, again)


@pytest.mark.parametrize("make", FACTORIES, ids=IDS)
def test_two_samples_work_or_name_the_parameter(make):
    """Two samples: the neighbor-based estimators name the parameter they are too few for; the classifier fits."""
    estimator = make()
    if isinstance(estimator, IConClassifier):
        outputs = fit_outputs(estimator, BASE[:2], y=np.array([0, 1]))
        assert all(np.isfinite(output).all() for output in outputs)
        return
    if isinstance(estimator, IConClustering):
        expected = "n_clusters=3 must be at most n_samples=2"
    else:
        expected = ("n_neighbors" if estimator.supervisory == "knn" else "perplexity") + "=5 must be less than n_samples=2"
    with pytest.raises(ValueError, match=expected):
        fit_outputs(estimator, BASE[:2], y=np.array([0, 1]))


@pytest.mark.parametrize("make", FACTORIES, ids=IDS)
def test_sparse_input_works_or_says_to_densify(make):
    """Sparse features: the embedding takes them, and the clustering except under c-SNE (which names why);
    the classifier says to densify."""
    estimator = make()
    takes_sparse = isinstance(estimator, IConEmbedding) or (
        isinstance(estimator, IConClustering) and estimator.divergence == "forward"
    )
    if takes_sparse:
        outputs = fit_outputs(estimator, sp.csr_matrix(BASE))
        assert all(np.isfinite(output).all() for output in outputs)
    else:
        message = "c-SNE" if isinstance(estimator, IConClustering) else "toarray"
        with pytest.raises(TypeError, match=message):
            fit_outputs(estimator, sp.csr_matrix(BASE))


@pytest.mark.parametrize(
    "estimator, message",
    [
        (IConEmbedding(perplexity=40, **CPU), "perplexity=40 must be less than n_samples=40"),
        (IConEmbedding(perplexity=400, **CPU), "perplexity=400 must be less than n_samples=40"),
        (IConEmbedding(supervisory="knn", n_neighbors=40, **CPU), "n_neighbors=40 must be less than n_samples=40"),
        (IConClustering(n_neighbors=40, **CPU), "n_neighbors=40 must be less than n_samples=40"),
        (IConClustering(n_clusters=41, **CPU), "n_clusters=41 must be at most n_samples=40"),
        (IConClustering(n_clusters=3, affinity="gaussian", perplexity=40, **CPU), "perplexity=40"),
    ],
    ids=lambda value: value if isinstance(value, str) else type(value).__name__,
)
def test_neighborhoods_as_large_as_the_data_are_named(estimator, message):
    with pytest.raises(ValueError, match=message):
        fit_outputs(estimator, BASE)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("make", FACTORIES, ids=IDS)
def test_alpha_at_its_bounds_gives_finite_output(make, alpha):
    estimator = make().set_params(alpha=alpha)
    if alpha > 0 and getattr(estimator, "divergence", "forward") == "reverse":
        # Theorem 13's c-SNE loss has no debiasing: refused, by name.
        with pytest.raises(ValueError, match="needs alpha=0.0"):
            fit_outputs(estimator, BASE)
        return
    for output in fit_outputs(estimator, BASE):
        assert np.isfinite(output).all()


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
@pytest.mark.parametrize("make", FACTORIES, ids=IDS)
def test_alpha_outside_the_unit_interval_is_named(make, alpha):
    with pytest.raises(ValueError, match="'alpha' parameter"):
        fit_outputs(make().set_params(alpha=alpha), BASE)


@pytest.mark.parametrize("make", FACTORIES, ids=IDS)
def test_wrong_feature_count_after_fit_is_named(make):
    estimator = make()
    fit_outputs(estimator, BASE)
    methods = [name for name in ("predict", "predict_proba", "transform") if hasattr(estimator, name)]
    for method in methods:
        with pytest.raises(ValueError, match="X has 3 features, but .* is expecting 5 features"):
            getattr(estimator, method)(BASE[:, :3])


def test_classifier_single_class_and_unseen_labels():
    with pytest.raises(ValueError, match="at least two classes"):
        IConClassifier(**CPU).fit(BASE, np.zeros(40))
    model = IConClassifier(**CPU).fit(BASE, LABELS)
    unseen = np.where(LABELS == 2, 7, LABELS)
    assert 0.0 <= model.score(BASE, unseen) <= 1.0
    assert set(model.predict(BASE)) <= {0, 1, 2}


def _snapshot(estimator):
    state = {"n_features_in_": estimator.n_features_in_}
    for method in ("predict_proba", "transform"):
        if hasattr(estimator, method):
            state[method] = getattr(estimator, method)(BASE)
    for attribute in ("embedding_", "labels_"):
        if hasattr(estimator, attribute):
            state[attribute] = getattr(estimator, attribute).copy()
    return state


def _assert_same(before, after):
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])


@pytest.mark.parametrize("make", FACTORIES, ids=IDS)
def test_failed_refit_keeps_the_fitted_model(make):
    estimator = make()
    fit_outputs(estimator, BASE)
    before = _snapshot(estimator)
    # Fails in validation after n_features_in_ was read from the new X:
    # 3 features, and a size no configuration accepts.
    with pytest.raises(ValueError):
        fit_outputs(estimator, BASE[:1, :3])
    with pytest.raises(ValueError):
        fit_outputs(estimator, _with(np.nan))
    _assert_same(before, _snapshot(estimator))


#: Where each estimator's training loop can be interrupted.
TRAINING_LOOPS = {
    IConEmbedding: [(embedding_module, "train_table"), (embedding_module, "train_mapper")],
    IConClustering: [(clustering_module, "train_restarts")],
    IConClassifier: [(classifier_module, "lbfgs"), (classifier_module, "train_minibatch")],
}


@pytest.mark.parametrize("make", FACTORIES, ids=IDS)
def test_keyboard_interrupt_propagates_and_keeps_the_fitted_model(make, monkeypatch):
    estimator = make()
    fit_outputs(estimator, BASE)
    before = _snapshot(estimator)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    for module, name in TRAINING_LOOPS[type(estimator)]:
        monkeypatch.setattr(module, name, interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit_outputs(estimator, rng.normal(size=(30, 4)))
    monkeypatch.undo()
    _assert_same(before, _snapshot(estimator))


@pytest.mark.parametrize(
    "estimator, diverges",
    [
        (IConEmbedding(mapper="mlp", learning_rate=1e30, **FAST_EMBEDDING), True),
        # Softmax assignments saturate instead of overflowing: the fit ends finite.
        (IConClustering(n_clusters=3, n_neighbors=5, n_init=1, max_iter=60, learning_rate=1e30, **CPU), False),
        (IConClassifier(mapper="mlp", learning_rate=1e30, max_iter=5, **CPU), True),
    ],
    ids=["embedding", "clustering", "classifier"],
)
def test_divergence_stops_with_the_likely_cause(estimator, diverges):
    """A learning rate far too large: the fit stops with an error naming it, never returns NaN."""
    if diverges:
        with pytest.raises(FloatingPointError, match="learning_rate"):
            fit_outputs(estimator, BASE)
    else:
        outputs = fit_outputs(estimator, BASE)
        assert all(np.isfinite(output).all() for output in outputs)


# Property-based: small random inputs and parameters.

small_data = st.tuples(
    st.integers(8, 30), st.integers(1, 4), st.integers(-6, 6), st.integers(0, 2**31 - 1)
).map(lambda args: np.random.default_rng(args[3]).normal(size=args[:2]) * 10.0 ** args[2])


@settings(max_examples=25, deadline=None)
@given(X=small_data, alpha=st.floats(0, 1), kernel=st.sampled_from(["gaussian", "student_t", "knn"]))
def test_p_rows_are_distributions(X, alpha, kernel):
    data = torch.as_tensor(X)
    P = supervisory_distribution(
        data, kernel=kernel, normalization="conditional", perplexity=min(5.0, len(X) - 1.5), n_neighbors=3
    ).to_dense()
    assert torch.isfinite(P).all() and (P >= 0).all()
    torch.testing.assert_close(P.sum(1), torch.ones(len(X), dtype=P.dtype))
    # The backend's debiasing: the uniform mixture over the other points, rows still distributions.
    debiased = debias(P, alpha, "conditional")
    uniform = (1 - torch.eye(len(X), dtype=P.dtype)) / (len(X) - 1)
    torch.testing.assert_close(debiased, (1 - alpha) * P + alpha * uniform)
    assert (debiased.diagonal() == 0).all() and (debiased >= 0).all()
    torch.testing.assert_close(debiased.sum(1), torch.ones(len(X), dtype=P.dtype))


@settings(max_examples=25, deadline=None)
@given(
    X=small_data,
    alpha_q=st.floats(0, 0.99),
    kernel=st.sampled_from(["student_t", "gaussian", "cosine"]),
    clusters=st.integers(1, 5),
)
def test_q_rows_are_distributions(X, alpha_q, kernel, clusters):
    Y = torch.as_tensor(X)
    for q in (
        log_q_from_log_kernel(log_kernel_matrix(Y, kernel), "conditional", alpha_q).exp(),
        debias_log_q(torch.log_softmax(prototype_logits(Y, Y[:clusters], kernel="harmonic"), 1), alpha_q).exp(),
        cluster_log_q_dense(torch.log_softmax(Y[:, :1] * torch.arange(clusters), 1)).exp(),
    ):
        assert torch.isfinite(q).all()
        torch.testing.assert_close(q.sum(1), torch.ones(len(X), dtype=q.dtype))


@settings(max_examples=10, deadline=None)
@given(X=small_data, alpha=st.floats(0, 1), which=st.integers(0, 2))
def test_estimators_give_finite_output_on_random_small_data(X, alpha, which):
    n = len(X)
    estimator = [
        IConEmbedding(perplexity=min(5.0, n - 1.5), max_iter=50, early_exaggeration_iter=20, alpha=alpha, **CPU),
        IConClustering(n_clusters=2, n_neighbors=min(5, n - 1), n_init=1, max_iter=30, alpha=alpha, **CPU),
        IConClassifier(alpha=alpha, max_iter=30, **CPU),
    ][which]
    labels = np.arange(n) % 2
    for output in fit_outputs(estimator, X, y=labels):
        assert np.isfinite(output).all()
