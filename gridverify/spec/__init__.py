"""Certification specifications: load regions, constraint selection, thresholds."""

from gridverify.spec.constraints import (
    FAMILIES,
    FAMILY_KIND,
    FAMILY_UNIT,
    Constraint,
    ConstraintSelection,
    parse_constraints,
    select_constraints,
)
from gridverify.spec.region import (
    Region,
    box_region,
    correlated_region,
    dataset_region,
    explicit_region,
    load_factor_region,
    parse_region,
    pglearn_region,
    scale_region,
    validate_region,
    zone_region,
)
from gridverify.spec.specfile import Specification, load_spec, spec_from_mapping
from gridverify.spec.thresholds import (
    ThresholdRule,
    ThresholdSpec,
    parse_threshold,
    resolve_thresholds,
)

__all__ = [
    "FAMILIES",
    "FAMILY_KIND",
    "FAMILY_UNIT",
    "Constraint",
    "ConstraintSelection",
    "Region",
    "Specification",
    "ThresholdRule",
    "ThresholdSpec",
    "box_region",
    "correlated_region",
    "dataset_region",
    "explicit_region",
    "load_factor_region",
    "load_spec",
    "parse_constraints",
    "parse_region",
    "parse_threshold",
    "pglearn_region",
    "scale_region",
    "resolve_thresholds",
    "select_constraints",
    "spec_from_mapping",
    "validate_region",
    "zone_region",
]
