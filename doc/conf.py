"""Sphinx configuration of the sklearn-icon documentation."""

import sklearn_icon

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
exclude_patterns = ["_build", "README.rst", "_templates", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip"]
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
