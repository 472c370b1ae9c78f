"""The schema's presence rule with NaN and ±inf counted as missing (no TFX or TensorFlow here).

TFDV counts a feature as present when the example carries a value, whatever the value: 30% NaN
passes `presence { min_fraction: 0.9 }`, while the same 30% absent is refused. The trainer
treats NaN and ±inf alike as missing (imputed and flagged), so the presence rule must too.

The counts come from StatisticsGen's own statistics, exactly (measured, TFDV 1.16, Beam over
several files): `num_non_missing` examples carry the feature; the standard histogram's `num_nan`
counts NaN values, a bucket with bounds (-inf, -inf) holds the -inf values, one with bounds
(inf, inf) the +inf values, and when no value is finite one bucket (inf, -inf) holds them all.

Refusing NaN or ±inf outright in a feature is the schema's job, per feature, with no config
key: `float_domain { disallow_nan: true disallow_inf: true }` (TFDV checks both; a
`float_domain` max already refuses +inf, and a min -inf, as out of range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# `Histogram.HistogramType.STANDARD` in statistics.proto (0, the default).
_STANDARD = 0


@dataclass(frozen=True)
class NonFiniteCounts:
    """How many of a split's examples lack a finite value of one numeric feature."""

    examples: int
    absent: int
    nan: int
    infinite: int

    @property
    def finite(self) -> int:
        return self.examples - self.absent - self.nan - self.infinite


def _feature_name(stats) -> str:
    return ".".join(stats.path.step) if stats.HasField("path") else stats.name


def count_non_finite(dataset, feature_stats) -> NonFiniteCounts | None:
    """The counts of one `FeatureNameStatistics` of a single-valued numeric feature.

    None when the feature is not numeric or holds more than one value per example (an example
    with [1.0, nan] has a finite value; the histogram counts values, not examples).
    """
    if not feature_stats.HasField("num_stats"):
        return None
    num = feature_stats.num_stats
    if num.common_stats.max_num_values > 1:
        return None
    histograms = [h for h in num.histograms if h.type == _STANDARD] or list(num.histograms)
    nan = infinite = 0.0
    if histograms:
        h = histograms[0]
        nan = h.num_nan
        # Finite values only fall in buckets with finite bounds; with no finite value at all
        # the histogram is one bucket (inf, -inf) holding every infinite one.
        infinite = sum(
            b.sample_count for b in h.buckets
            if math.isinf(b.low_value) and math.isinf(b.high_value)
        )
    examples = dataset.num_examples
    return NonFiniteCounts(
        examples=examples,
        absent=examples - num.common_stats.num_non_missing,
        nan=int(round(nan)),
        infinite=int(round(infinite)),
    )


def _percent(part: int, whole: int) -> str:
    # Rounded down: 89.96% must not read "90.0%" next to "requires at least 90%".
    return f"{math.floor(1000 * part / whole) / 10:g}%" if whole else "0%"


def non_finite_findings(dataset, schema) -> dict[str, str]:
    """Feature name -> why its finite values break the schema's presence rule, for one split.

    Args:
      dataset: the split's `DatasetFeatureStatistics` (StatisticsGen's, one per split).
      schema: the curated `schema_pb2.Schema`.

    Only FLOAT features that hold NaN or ±inf are checked: without them TFDV's own presence
    check, run by ExampleValidator, is the same rule (and an INT holds neither).
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    rules = {
        f.name: f.presence for f in schema.feature
        if f.type == schema_pb2.FLOAT and f.HasField("presence")
    }
    findings = {}
    for feature_stats in dataset.features:
        name = _feature_name(feature_stats)
        presence = rules.get(name)
        counts = count_non_finite(dataset, feature_stats) if presence is not None else None
        if counts is None or counts.nan + counts.infinite == 0:
            continue
        detail = (
            f"({counts.nan} NaN, {counts.infinite} infinite, {counts.absent} absent "
            f"of {counts.examples}); NaN and infinite values count as missing"
        )
        if presence.HasField("min_fraction") and (
            counts.finite < presence.min_fraction * counts.examples
        ):
            findings[name] = (
                f"only {_percent(counts.finite, counts.examples)} of examples have a finite "
                f"value, the schema's presence.min_fraction requires at least "
                f"{presence.min_fraction * 100:g}% {detail}"
            )
        elif presence.HasField("min_count") and counts.finite < presence.min_count:
            findings[name] = (
                f"only {counts.finite} examples have a finite value, the schema's "
                f"presence.min_count requires at least {presence.min_count} {detail}"
            )
    return findings
