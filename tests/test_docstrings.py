"""Every public class and function documents itself with a runnable example.

The examples themselves run under ``--doctest-modules`` (pytest's addopts);
this checks none is missing.
"""

import inspect

import pytest

import sklearn_icon
import sklearn_icon.methods
import sklearn_icon.metrics


def public_objects():
    """``(qualified name, object)`` for the package's public classes and functions."""
    modules = [sklearn_icon, sklearn_icon.methods, sklearn_icon.metrics]
    found = {}
    for module in modules:
        names = getattr(module, "__all__", None) or [
            name
            for name, obj in vars(module).items()
            if not name.startswith("_") and inspect.isfunction(obj) and obj.__module__ == module.__name__
        ]
        for name in names:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return sorted(found.items())


def test_the_public_api_is_found():
    names = [name for name, _ in public_objects()]
    assert any(name.endswith("IConEmbedding") for name in names)
    assert any(name.endswith("clustering_accuracy") for name in names)
    assert any(name.endswith("make_method") for name in names)


@pytest.mark.parametrize("name,obj", public_objects(), ids=[name for name, _ in public_objects()])
def test_public_object_has_numpydoc_sections_and_a_runnable_example(name, obj):
    doc = inspect.getdoc(obj) or ""
    assert doc, f"{name} has no docstring"
    assert "Examples\n--------" in doc, f"{name}'s docstring has no Examples section"
    examples = doc.split("Examples\n--------", 1)[1]
    assert ">>> " in examples, f"{name}'s Examples section has no doctest"
    parameters = [p for p in inspect.signature(obj).parameters if p not in ("self", "args", "kwargs")]
    if parameters:
        assert "Parameters\n----------" in doc, f"{name} takes parameters but documents none"
