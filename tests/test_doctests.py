"""The doctests of every module of the tapediff package, one test per module.

Each test also checks that the finder saw every ``>>>`` line of the module's
source, so an example hidden where ``doctest`` does not look (a function
wrapped by a decorator that changes ``__module__``, say) fails instead of
being silently skipped.
"""
import doctest
import importlib
import io
import pathlib
import pkgutil
import re

import pytest

import tapediff

MODULES = sorted(m.name for m in pkgutil.walk_packages(tapediff.__path__, "tapediff."))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# module name -> reason, for doctests known to fail in modules this file does
# not own; each is an xfail(strict=True), so a fix makes the suite say so.
KNOWN_FAILURES = {}


def _params():
    for name in MODULES:
        marks = ()
        if name in KNOWN_FAILURES:
            marks = pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[name])
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_params()))
def test_module_doctests(name):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder(exclude_empty=True).find(module) if t.examples]
    found = sum(len(t.examples) for t in tests)
    source = pathlib.Path(module.__file__).read_text()
    in_source = len(re.findall(r"^\s*>>>", source, flags=re.M))
    assert found == in_source, (f"{name}: the source has {in_source} '>>>' lines but "
                                f"doctest finds {found} examples")
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for t in tests:
        runner.run(t, out=report.write)
    result = runner.summarize(verbose=False)
    assert result.attempted == found
    assert result.failed == 0, (f"{result.failed} doctest failure(s) in {name}:\n"
                                + report.getvalue())


def test_public_modules_have_doctests():
    # the package's documented entry points carry examples; guard against
    # the collection above finding nothing at all
    for name in ("tapediff.api", "tapediff.custom", "tapediff.testing"):
        tests = doctest.DocTestFinder().find(importlib.import_module(name))
        assert sum(len(t.examples) for t in tests) >= 5, name
