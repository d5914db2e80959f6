"""engine/util/signature.py: the compact signature that travels with actors, and the check."""

from __future__ import annotations

import pytest
from ownrun.engine.util import signature


class Sample:
    def __init__(self, x, *, y=2):
        pass

    def method(self, a, b=1, *rest, key, **extra):
        pass

    @staticmethod
    def static(a):
        pass

    @classmethod
    def klass(cls, a):
        pass

    def any_args(*args):
        pass


def test_compact_signatures_drop_self_and_cls_but_not_a_static_methods_first_parameter():
    assert signature.spec(Sample) == [["x", 1, False], ["y", 3, True]]
    assert [p[0] for p in signature.method_spec(Sample, "method")] == ["a", "b", "rest", "key", "extra"]
    assert signature.method_spec(Sample, "static") == [["a", 1, False]]
    assert signature.method_spec(Sample, "klass") == [["a", 1, False]]
    assert signature.method_spec(Sample, "any_args") is None  # self inside *args: no check
    assert signature.spec(len) == [["obj", 0, False]]


def test_check_rejects_missing_extra_and_unknown_keyword_arguments_naming_the_function():
    sig = signature.from_spec(signature.method_spec(Sample, "method"))
    signature.check(sig, (1, 2, 3, 4), {"key": 1, "other": 2}, "Sample.method")
    for args, kwargs in [((), {"key": 1}), ((1,), {})]:
        with pytest.raises(TypeError, match=r"^Sample\.method\(\) "):
            signature.check(sig, args, kwargs, "Sample.method")
    ctor = signature.from_spec(signature.spec(Sample))
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        signature.check(ctor, (1,), {"z": 3}, "Sample")
    with pytest.raises(TypeError, match="too many positional"):
        signature.check(ctor, (1, 2), {}, "Sample")
    signature.check(None, (1, 2, 3), {"anything": 1}, "unchecked")


def test_positional_calls_decided_by_their_count_agree_with_a_full_bind():
    def plain(a, b, c=3):
        pass

    def star(a, *rest):
        pass

    def keyword_only(a, *, k):
        pass

    for fn in (plain, star, keyword_only, Sample.method):
        check = signature.from_spec(signature.spec(fn))
        for n in range(6):
            args = tuple(range(n))
            try:
                check.signature.bind(*args)
                expected = None
            except TypeError:
                expected = TypeError
            if expected is None:
                signature.check(check, args, {}, fn.__name__)
            else:
                with pytest.raises(TypeError, match=rf"^{fn.__name__}\(\) "):
                    signature.check(check, args, {}, fn.__name__)
