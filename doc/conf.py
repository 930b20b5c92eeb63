"""Sphinx configuration of the sklearn-icon documentation."""

from pathlib import Path

import sklearn_icon
from sklearn_icon.methods import method_table

project = "sklearn-icon"
author = "the sklearn-icon developers"
release = version = sklearn_icon.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

autosummary_generate = True
templates_path = ["_templates"]
numpydoc_show_class_members = False
numpydoc_validation_checks = set()
exclude_patterns = [
    "_build",
    "README.rst",
    "_templates",
    "generated/periodic_table_rows.rst",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
]
# Nothing is fetched at build time: cross-references to other projects stay plain text.
intersphinx_mapping = {}
nitpicky = False

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
}

html_theme = "pydata_sphinx_theme"
html_title = "sklearn-icon"
html_theme_options = {"navigation_with_keys": False}


def write_periodic_table(path):
    """The periodic table page's table, generated from the methods registry."""
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 14 16 26 26 18",
        "",
        "   * - name",
        "     - method",
        "     - supervisory ``p(j|i)``",
        "     - learned ``q(j|i)``",
        "     - estimator, fit, theorem",
    ]
    def text(value):
        return value.replace("|", "\\|").replace("*", "\\*")

    for row in method_table():
        row = {key: text(value) if isinstance(value, str) else value for key, value in row.items()}
        params = ", ".join(f"{key}={value!r}" for key, value in row["params"].items())
        lines += [
            f"   * - ``{row['name']}``",
            f"     - {row['title']} ({row['reference']})",
            f"     - {row['supervisory']}",
            f"     - {row['learned']}",
            f"     - :class:`~sklearn_icon.{row['estimator']}` ({params or 'defaults'}); "
            f"``fit({row['fit_with']})``; {row['theorem']}",
        ]
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


write_periodic_table(Path(__file__).parent / "generated" / "periodic_table_rows.rst")
