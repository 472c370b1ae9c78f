"""`statistics.sample_rate`: off by default, TFDV's sampling in StatisticsGen when set, and
refused outside (0, 1] naming the key."""

from __future__ import annotations

import json

import pytest

from pipeline.config import ConfigError, load_config


def _statistics_node(cfg):
    from components.tf_process import defer_tfx_components_init, prepare_tf_process

    prepare_tf_process()
    defer_tfx_components_init()
    from pipeline.build import build_pipeline

    return {c.id: c for c in build_pipeline(cfg).components}["StatisticsGen"]


def test_every_example_by_default():
    cfg = load_config()
    assert cfg.statistics.sample_rate is None
    assert _statistics_node(cfg).exec_properties.get("stats_options_json") is None


def test_a_sample_rate_reaches_tfdv():
    cfg = load_config("local", None, {"statistics": {"sample_rate": 0.1}})
    options = json.loads(_statistics_node(cfg).exec_properties["stats_options_json"])
    assert options["_sample_rate"] == 0.1
    from tensorflow_data_validation.statistics.stats_options import StatsOptions

    assert StatsOptions.from_json(json.dumps(options)).sample_rate == 0.1


@pytest.mark.parametrize("rate", [0, -0.5, 1.5])
def test_a_rate_outside_zero_to_one_is_refused(rate):
    with pytest.raises(ConfigError, match=r"statistics\.sample_rate"):
        load_config("local", None, {"statistics": {"sample_rate": rate}})
