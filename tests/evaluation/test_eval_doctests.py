"""The examples in the evaluation docstrings run and print what they claim."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["gssf.evaluation.image_text", "gssf.evaluation.retrieval", "gssf.evaluation.evaluators"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"torch": importlib.import_module("torch")}, verbose=False)
    assert result.attempted > 0 and result.failed == 0
