"""Certification: ``certify`` and the ``Certificate`` it returns."""

from gridverify.certify.certificate import (
    CERTIFIED,
    OPEN,
    VIOLATED,
    Certificate,
    ConstraintResult,
    decide_status,
)
from gridverify.certify.certify import (
    METHODS,
    CertifyOptions,
    RegionWarning,
    bab_available,
    certify,
    default_region,
    evaluate_violations,
    model_hash,
)
from gridverify.certify.compare import CertificateDiff, ConstraintChange, compare_certificates

__all__ = [
    "CERTIFIED",
    "METHODS",
    "OPEN",
    "VIOLATED",
    "Certificate",
    "CertificateDiff",
    "CertifyOptions",
    "ConstraintChange",
    "ConstraintResult",
    "RegionWarning",
    "bab_available",
    "certify",
    "compare_certificates",
    "decide_status",
    "default_region",
    "evaluate_violations",
    "model_hash",
]


# ``gridverify.certify`` is both this package and the function: once the package is
# imported, ``import gridverify; gridverify.certify(...)`` finds the package (the
# lazy export in gridverify/__init__.py is bypassed), so the package forwards calls.
def _make_callable() -> None:
    import sys
    import types

    class _CallablePackage(types.ModuleType):
        def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN204
            """Same as :func:`gridverify.certify.certify`."""
            return certify(*args, **kwargs)

    mod = sys.modules[__name__]
    mod.__class__ = _CallablePackage
    # what a notebook's help, ``?`` and inspect.signature show for gridverify.certify,
    # which is this package once imported: the function's signature and docstring
    mod.__wrapped__ = certify
    mod.__doc__ = (f"{mod.__doc__}\n\nThe package is callable: calling it calls "
                   f"``certify``, whose documentation follows.\n\n{certify.__doc__}")


_make_callable()
