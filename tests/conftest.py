"""Shared fixtures and markers of the test suite.

``slow`` (registered in ``pyproject.toml``) marks the fits over whole data
sets: quality against peers, restarts, processes. CI runs them all;
``python -m pytest -m "not slow"`` leaves them out for a quick local pass.
"""

import pytest
from sklearn.datasets import load_digits


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits, ``(X, y)``: 1797 images of 64 pixels, 10 classes."""
    return load_digits(return_X_y=True)
