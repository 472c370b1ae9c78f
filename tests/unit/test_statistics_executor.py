"""StatisticsGen's executor here (components/statistics): the statistics TFX's own executor
computes, from the same files, read through tf.data; other inputs read by TFX's source."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def examples_dir(tmp_path_factory) -> Path:
    """An Examples artifact's folder: the synthetic data's splits, 3 files each."""
    from data.synthetic import write_split_layout

    root = tmp_path_factory.mktemp("examples")
    return Path(write_split_layout(str(root), 6000, 900, seed=3, n_files=3).span_dir)


def _examples(uri: Path, file_format: str = "tfrecords_gzip"):
    from tfx.types import standard_artifacts

    examples = standard_artifacts.Examples()
    examples.uri = str(uri)
    examples.split_names = '["train", "eval"]'
    examples.set_string_custom_property("payload_format", "FORMAT_TF_EXAMPLE")
    examples.set_string_custom_property("file_format", file_format)
    return examples


def _statistics(executor_class, examples, out: Path) -> dict[str, object]:
    import tensorflow_data_validation as tfdv
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
    from tfx.types import standard_artifacts

    stats = standard_artifacts.ExampleStatistics()
    stats.uri = str(out)
    stats.split_names = examples.split_names
    context = BaseBeamExecutor.Context(
        beam_pipeline_args=["--direct_running_mode=in_memory"], tmp_dir=str(out / "tmp"))
    executor_class(context).Do({"examples": [examples]}, {"statistics": [stats]},
                               {"exclude_splits": "[]"})
    return {split: tfdv.load_stats_binary(os.path.join(out, f"Split-{split}",
                                                       "FeatureStats.pb")).datasets[0]
            for split in ("train", "eval")}


def _outline(feature) -> dict:
    """What does not depend on the order examples arrive in: counts, presence, ranges, top
    values (means and quantile sketches are compared within rounding below)."""
    out = {"type": feature.type}
    common = (feature.num_stats.common_stats if feature.HasField("num_stats")
              else feature.string_stats.common_stats)
    out["common"] = (common.num_non_missing, common.num_missing, common.min_num_values,
                     common.max_num_values, common.tot_num_values)
    if feature.HasField("num_stats"):
        n = feature.num_stats
        out["num"] = (n.min, n.max, n.num_zeros)
    else:
        s = feature.string_stats
        out["str"] = (s.unique, [(v.value, v.frequency) for v in s.top_values])
    return out


def test_the_statistics_of_tfxs_executor_from_the_same_files(examples_dir, tmp_path,
                                                             monkeypatch):
    from tfx.components.statistics_gen.executor import Executor as TfxExecutor

    from components.statistics import executor as ours

    read = []
    beam_source = ours._FastSource.BeamSource
    monkeypatch.setattr(ours._FastSource, "BeamSource",
                        lambda self, *a: read.extend(self.files) or beam_source(self, *a))
    mine = _statistics(ours.Executor, _examples(examples_dir), tmp_path / "ours")
    tfx = _statistics(TfxExecutor, _examples(examples_dir), tmp_path / "tfx")
    assert len(read) == 6  # every file of both splits, through tf.data
    for split in ("train", "eval"):
        a, b = mine[split], tfx[split]
        assert a.num_examples == b.num_examples == (6000 if split == "train" else 900)
        fa = {f.path.step[0]: f for f in a.features}
        fb = {f.path.step[0]: f for f in b.features}
        assert sorted(fa) == sorted(fb) and len(fa) > 5
        for name in fa:
            assert _outline(fa[name]) == _outline(fb[name]), (split, name)
            if fa[name].HasField("num_stats"):
                x, y = fa[name].num_stats, fb[name].num_stats
                assert x.mean == pytest.approx(y.mean, rel=1e-9, abs=1e-12)
                assert x.std_dev == pytest.approx(y.std_dev, rel=1e-9, abs=1e-12)
                # An approximate quantile sketch: fed in another order, within its error.
                spread = (x.max - x.min) or 1.0
                assert abs(x.median - y.median) <= 0.01 * spread, (split, name)


def test_other_inputs_are_left_to_tfxs_source(examples_dir, tmp_path):
    from tfx.components.util import tfxio_utils

    from components.statistics import executor as ours

    assert len(ours._files_if_fast([_examples(examples_dir)], "eval", None)) == 3
    assert ours._files_if_fast([_examples(examples_dir, "parquet")], "train", None) is None
    assert ours._files_if_fast([_examples(examples_dir)], "train", schema=object()) is None
    before = tfxio_utils.get_split_tfxio
    with pytest.raises(Exception):  # noqa: B017 (whatever TFX raises on a missing split)
        _statistics(ours.Executor, _examples(tmp_path / "nothing"), tmp_path / "out")
    assert tfxio_utils.get_split_tfxio is before  # TFX's function is back, even after a failure
