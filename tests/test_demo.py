"""The ``python -m sklearn_icon`` demo on a user's files."""

import importlib.util

import numpy as np
import pytest
from sklearn.datasets import load_iris

from sklearn_icon.__main__ import load_table, main


def test_demo_runs_on_npy_and_csv_files(tmp_path, capsys):
    X, y = load_iris(return_X_y=True)
    np.save(tmp_path / "features.npy", X)
    np.savetxt(tmp_path / "labels.csv", y, delimiter=",")
    output = tmp_path / "embedding.png"
    main(
        [
            "--data", str(tmp_path / "features.npy"),
            "--labels", str(tmp_path / "labels.csv"),
            "--no-compare",
            "--device", "cpu",
            "--output", str(output),
        ]
    )
    printed = capsys.readouterr().out
    assert "150 samples, 4 features" in printed
    for section in ("Embedding (2-D)", "Clustering (3 clusters", "Classification (80/20"):
        assert section in printed
    assert "IConEmbedding" in printed and "IConClustering" in printed and "IConClassifier" in printed
    if importlib.util.find_spec("matplotlib") is None:
        assert "No PNG written" in printed
    else:
        assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_load_table_reads_csv_and_refuses_other_files(tmp_path):
    np.savetxt(tmp_path / "x.csv", np.arange(6.0).reshape(3, 2), delimiter=",")
    np.testing.assert_array_equal(load_table(tmp_path / "x.csv"), np.arange(6.0).reshape(3, 2))
    with pytest.raises(ValueError, match="expected a .npy or .csv file"):
        load_table(tmp_path / "x.txt")
