"""scikit-learn's own estimator checks over every public estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_icon import IConClustering, IConEmbedding

# Small, fast instances: the checks fit on a few dozen samples.
ESTIMATORS = [
    IConEmbedding(perplexity=5, max_iter=60, early_exaggeration_iter=20, device="cpu", random_state=0),
    IConEmbedding(
        perplexity=5, mapper="linear", max_iter=40, early_exaggeration_iter=10, device="cpu", random_state=0
    ),
    IConEmbedding(
        perplexity=5,
        mapper="mlp",
        hidden_layer_sizes=(16,),
        learned="cosine",
        max_iter=30,
        early_exaggeration_iter=10,
        device="cpu",
        random_state=0,
    ),
    IConClustering(n_clusters=3, n_neighbors=5, n_init=2, max_iter=60, device="cpu", random_state=0),
    IConClustering(
        n_clusters=3, n_neighbors=5, mapper="mlp", hidden_layer_sizes=(8,), learned="cluster_degree", alpha=0.2,
        n_init=1, max_iter=40, device="cpu", random_state=0,
    ),
    IConClustering(n_clusters=3, n_neighbors=5, mapper="table", n_init=1, max_iter=60, device="cpu", random_state=0),
]

EXPECTED_FAILED_CHECKS = {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
