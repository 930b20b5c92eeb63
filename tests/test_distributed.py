"""Many fits on a cluster: GridSearchCV through joblib's Dask backend.

Needs the ``distributed`` extra (``pip install "sklearn-icon[distributed]"``);
skipped without it. The local cluster listens on the loopback address only.
"""

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from sklearn_icon import IConClustering

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def local_cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.mark.slow
def test_grid_search_on_a_dask_cluster_finds_the_default_backends_best(local_cluster):
    X, y = load_digits(return_X_y=True)
    X, y = X[:400], y[:400]
    grid = {"n_neighbors": [5, 15], "alpha": [0.0, 0.3]}
    base = IConClustering(n_clusters=10, n_init=1, max_iter=60, device="cpu", random_state=0)

    def search():
        return GridSearchCV(base, grid, scoring="adjusted_rand_score", cv=3).fit(X, y)

    default = search()
    with distributed.get_task_stream(local_cluster) as stream, joblib.parallel_config(backend="dask", n_jobs=-1):
        on_cluster = search()
    # The 12 fits (and the refit's scoring) ran on both workers, not in this process.
    workers = {task["worker"] for task in stream.data}
    assert len(stream.data) >= len(on_cluster.cv_results_["params"]) * 3
    assert len(workers) == 2
    assert on_cluster.best_params_ == default.best_params_
    np.testing.assert_allclose(on_cluster.cv_results_["mean_test_score"], default.cv_results_["mean_test_score"])
