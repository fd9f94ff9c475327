"""Every case of the corpus replays compiled and agrees with the interpreter.

See tests/compiled/cases.py for the programs and tapediff/testing_compiled.py
for what "agrees" means (norm-wise 1e-12 in float64, 1e-5 in float32, NaN and
inf positions identical, a raise where the interpreter raises, and the
interpreter with a CompileWarning for a tape the C backend cannot lower).
"""
import pytest

from tapediff.testing_compiled import check_prepared
from tests.compiled.cases import CASE_NAMES
from tests.compiled.conftest import GROUPS, group_of


# case name -> reason, for disagreements whose fix lies outside the C backend;
# each is an xfail(strict=True), so a fix makes the suite say so.
KNOWN_FAILURES = {}


def _names(group):
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[n]))
            if n in KNOWN_FAILURES else n for n in CASE_NAMES if group_of(n) == group]


def _check(corpus, group, name):
    check_prepared(corpus(group)[name])


@pytest.mark.parametrize("name", _names("elementwise"))
def test_elementwise(corpus, name):
    _check(corpus, "elementwise", name)


@pytest.mark.parametrize("name", _names("ops"))
def test_ops(corpus, name):
    _check(corpus, "ops", name)


@pytest.mark.parametrize("name", _names("programs"))
def test_programs(corpus, name):
    _check(corpus, "programs", name)


def test_every_case_is_in_a_group():
    assert sum(len(_names(g)) for g in GROUPS) == len(CASE_NAMES)
    assert set(KNOWN_FAILURES) <= set(CASE_NAMES)
