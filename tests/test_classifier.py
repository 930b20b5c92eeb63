"""IConClassifier as a user meets it: agreement with LogisticRegression, quality, plumbing, errors."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_icon import IConClassifier

CPU = dict(device="cpu", random_state=0)


@pytest.mark.slow
@pytest.mark.parametrize("load", [load_digits, load_breast_cancer], ids=["digits", "breast_cancer"])
def test_linear_softmax_is_logistic_regression(load):
    """Same objective as LogisticRegression(C) after a StandardScaler (multiclass and binary)."""
    X, y = load(return_X_y=True)
    ours = IConClassifier(C=0.5, tol=1e-8, max_iter=2000, **CPU).fit(X, y)
    scaled = StandardScaler().fit_transform(X)
    theirs = LogisticRegression(C=0.5, tol=1e-10, max_iter=10000).fit(scaled, y)
    ours_proba, theirs_proba = ours.predict_proba(X), theirs.predict_proba(scaled)
    assert np.abs(ours_proba - theirs_proba).max() <= 1e-3
    assert (ours.predict(X) == theirs.predict(scaled)).mean() >= 0.99


@pytest.mark.slow
@pytest.mark.parametrize("load", [load_digits, load_wine, load_breast_cancer], ids=["digits", "wine", "breast_cancer"])
def test_default_accuracy_matches_logistic_regression(load):
    X, y = load(return_X_y=True)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    ours = cross_val_score(IConClassifier(**CPU), X, y, cv=folds).mean()
    theirs = cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), X, y, cv=folds).mean()
    assert ours >= theirs - 0.005


@pytest.mark.slow
def test_mlp_harmonic_reaches_097_on_digits(digits):
    X, y = digits
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    model = IConClassifier(mapper="mlp", learned="harmonic", **CPU)
    assert cross_val_score(model, X, y, cv=folds).mean() >= 0.97


def test_debiasing_is_label_smoothing_and_calibrates(digits):
    X, y = digits
    alpha, n_classes = 0.2, 10
    sharp = IConClassifier(**CPU).fit(X, y)
    smooth = IConClassifier(alpha=alpha, **CPU).fit(X, y)
    assert smooth.predict_proba(X).max(1).mean() < sharp.predict_proba(X).max(1).mean() - 0.05
    assert smooth.predict_proba(X).max(1).mean() <= 1 - alpha + alpha / n_classes
    # The fitted objective is the cross-entropy against the smoothed labels,
    # less their (constant) entropy, plus the L2 penalty.
    targets = np.full((len(y), n_classes), alpha / n_classes)
    targets[np.arange(len(y)), y] += 1 - alpha
    cross_entropy = -(targets * smooth.predict_log_proba(X)).sum(1).mean()
    entropy = -(targets * np.log(targets)).sum(1).mean()
    penalty = float(smooth.module_.penalty()) / (smooth.C * len(y))
    assert smooth.loss_ == pytest.approx(cross_entropy - entropy + penalty, rel=1e-9)


@pytest.mark.slow
def test_grid_search_over_kernels_and_alpha_refits():
    X, y = load_iris(return_X_y=True)
    search = GridSearchCV(
        IConClassifier(**CPU), {"learned": ["softmax", "cosine", "harmonic"], "alpha": [0, 0.1]}, cv=3
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 6
    assert search.best_score_ >= 0.9
    assert search.best_estimator_.predict(X).shape == (150,)


@pytest.mark.parametrize("mapper", ["linear", "mlp"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_pipeline_pickles_with_identical_predictions(mapper):
    X, y = load_wine(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), IConClassifier(mapper=mapper, hidden_layer_sizes=(16,), **CPU)).fit(X, y)
    restored = pickle.loads(pickle.dumps(pipeline))
    np.testing.assert_array_equal(restored.predict_proba(X), pipeline.predict_proba(X))
    np.testing.assert_array_equal(restored.predict(X), pipeline.predict(X))


def test_string_labels_and_binary_targets():
    X, y = load_breast_cancer(return_X_y=True)
    labels = np.array(["malignant", "benign"])[y]
    model = IConClassifier(**CPU).fit(X, labels)
    assert model.classes_.tolist() == ["benign", "malignant"]
    assert set(model.predict(X)) == {"benign", "malignant"}
    assert model.score(X, labels) >= 0.97
    assert model.predict_proba(X).shape == (len(X), 2)


def test_same_seed_same_model_and_transform_shape(digits):
    X, y = digits
    first = IConClassifier(mapper="mlp", hidden_layer_sizes=(32, 16), max_iter=5, **CPU)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        first.fit(X, y)
        second = IConClassifier(mapper="mlp", hidden_layer_sizes=(32, 16), max_iter=5, **CPU).fit(X, y)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    features = first.transform(X[:7])
    assert features.shape == (7, 16) and (features >= 0).all()
    assert not hasattr(IConClassifier(), "transform")
    assert len(first.loss_curve_) == first.n_iter_ == 5


def test_alpha_q_floors_probabilities(digits):
    X, y = digits
    model = IConClassifier(alpha_q=0.1, **CPU).fit(X, y)
    assert model.predict_proba(X).min() >= 0.1 / 10 - 1e-12
    np.testing.assert_allclose(model.predict_proba(X).sum(1), 1.0)


def test_non_convergence_warns_and_verbose_reports(capsys, digits):
    X, y = digits
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        model = IConClassifier(max_iter=3, verbose=1, **CPU).fit(X, y)
    assert model.n_iter_ == 3
    assert "[IConClassifier]" in capsys.readouterr().out


def test_sample_weight_counts_repetitions():
    X, y = load_iris(return_X_y=True)
    counts = np.arange(len(y)) % 3
    settings = dict(tol=1e-9, max_iter=1000, **CPU)
    weighted = IConClassifier(**settings).fit(X, y, sample_weight=counts)
    repeated = IConClassifier(**settings).fit(np.repeat(X, counts, 0), np.repeat(y, counts))
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize(
    "y, message",
    [
        (np.zeros(20), "at least two classes"),
        (np.linspace(0, 1, 20), "Unknown label type"),
        (np.eye(2)[np.arange(20) % 2].astype(int), "1d array"),
    ],
    ids=["one class", "continuous", "multilabel"],
)
def test_bad_targets_are_named(y, message):
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match=message):
        IConClassifier(**CPU).fit(X, y)


def test_zero_weight_on_all_but_one_class_is_refused():
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match="two classes"):
        IConClassifier(**CPU).fit(X, y, sample_weight=(y == 0).astype(float))


def test_wrong_feature_count_and_failed_refit_keep_the_model(digits):
    X, y = digits
    model = IConClassifier(**CPU).fit(X, y)
    before = model.predict_proba(X[:20])
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:5, :10])
    broken = X.copy()
    broken[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(broken, y)
    with pytest.raises(ValueError, match="at least two classes"):
        model.fit(X, np.zeros_like(y))
    np.testing.assert_array_equal(model.predict_proba(X[:20]), before)


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(learned="rbf"), "learned"),
        (dict(mapper="mlp", hidden_layer_sizes=()), "at least one hidden layer"),
        (dict(mapper="mlp", hidden_layer_sizes=(0,)), "positive integers"),
        (dict(alpha=1.5), "alpha"),
    ],
)
def test_bad_parameters_are_named(params, message):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match=message):
        IConClassifier(**params, **CPU).fit(X, y)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fit_matches_cpu_and_keeps_state_on_cpu(digits):
    X, y = digits
    cpu = IConClassifier(tol=1e-8, max_iter=1000, device="cpu").fit(X, y)
    gpu = IConClassifier(tol=1e-8, max_iter=1000, device="cuda").fit(X, y)
    assert all(p.device.type == "cpu" for p in gpu.module_.parameters())
    assert np.abs(gpu.predict_proba(X) - cpu.predict_proba(X)).max() <= 1e-4
    params = dict(mapper="mlp", learned="harmonic", random_state=0)
    mlp = IConClassifier(device="cuda", **params).fit(X[:1400], y[:1400])
    mlp_cpu = IConClassifier(device="cpu", **params).fit(X[:1400], y[:1400])
    # The last 397 digits are the hard ones: 0.914 on the CPU (seeds 1, 2: 0.919, 0.922).
    assert mlp.score(X[1400:], y[1400:]) >= mlp_cpu.score(X[1400:], y[1400:]) - 0.01 >= 0.9
