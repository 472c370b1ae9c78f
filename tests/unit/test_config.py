"""The typed pipeline configuration (pipeline/config.py) and the CLI's handling of bad configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from pipeline import config as config_mod
from pipeline.config import (
    ConfigError,
    PipelineConfig,
    config_to_dict,
    load_config,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = sys.executable


def write(tmp_path, text: str, name: str = "overlay.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def error_of(**kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(**kwargs)
    return str(info.value)


# --- the default profile ---------------------------------------------------------------------


def test_default_profile_is_local_penguins():
    cfg = load_config()
    assert config_mod.DEFAULT_PROFILE == "local"
    assert cfg.pipeline_name == "penguin"
    assert cfg.model.label == "species"
    assert cfg.model.task == "multiclass"
    assert cfg.model.features is None
    assert cfg.model.hidden_units == [16, 8]
    assert cfg.data.schema == "data/schema/schema.pbtxt"
    assert cfg.data.root == "data/penguins"
    assert cfg.data.span is None
    assert cfg.data.splits.folders == {"train": "Split-train", "eval": "Split-eval"}
    assert cfg.trainer.train_steps == 300
    assert cfg.trainer.batch_size == 32
    # Keys the profile does not set keep the dataclass defaults.
    assert cfg.trainer.epochs == 3
    assert cfg.trainer.seed == 42
    assert cfg.evaluator.slices == [["island"]]
    assert cfg.evaluator.thresholds[0].lower_bound == 0.8
    assert cfg.evaluator.thresholds[0].max_regression == 0.02
    assert cfg.sources == [str(config_mod.PROFILES_DIR / "local.yaml")]
    # The profile's schema path points at a real file in the repository.
    assert os.path.isfile(os.path.join(REPO, cfg.data.schema))


def test_learning_rate_given_as_an_int_becomes_a_float(tmp_path):
    cfg = load_config(config_file=write(tmp_path, "trainer: {learning_rate: 1}\n"))
    assert cfg.trainer.learning_rate == 1.0
    assert isinstance(cfg.trainer.learning_rate, float)


def test_resolved_paths_default_under_work_dir(tmp_path):
    cfg = load_config(overrides={"work_dir": str(tmp_path)})
    assert cfg.resolved_pipeline_root == str(tmp_path / "pipeline_root")
    assert cfg.resolved_metadata_path == str(tmp_path / "metadata.sqlite")


# --- layering: profile < --config file < flags ------------------------------------------------


def test_overlay_deep_merges_only_the_keys_it_holds(tmp_path):
    path = write(tmp_path, """\
        trainer:
          train_steps: 7
        data:
          span: 1
        """)
    cfg = load_config(config_file=path)
    assert cfg.trainer.train_steps == 7
    # Siblings of the overridden key keep the profile's values, not the dataclass defaults.
    assert cfg.trainer.batch_size == 32
    assert cfg.trainer.eval_steps == 10
    assert cfg.data.span == 1
    assert cfg.data.root == "data/penguins"
    assert cfg.model.label == "species"
    assert cfg.sources == [str(config_mod.PROFILES_DIR / "local.yaml"), path]


def test_overlay_merges_nested_mappings(tmp_path):
    path = write(tmp_path, "trainer: {distribution: {communication: ring}}\n")
    cfg = load_config(config_file=path)
    assert cfg.trainer.distribution.communication == "ring"
    assert cfg.trainer.distribution.workers == 1
    assert cfg.trainer.train_steps == 300


def test_overlay_replaces_lists_whole(tmp_path):
    path = write(tmp_path, "model: {hidden_units: [4]}\n")
    assert load_config(config_file=path).model.hidden_units == [4]


def test_empty_overlay_is_the_profile(tmp_path):
    path = write(tmp_path, "# nothing here\n")
    assert config_to_dict(load_config(config_file=path)) == config_to_dict(load_config())


def test_overrides_win_over_profile_and_file(tmp_path):
    path = write(tmp_path, "data: {root: from/file, span: 1}\ntrainer: {train_steps: 7}\n")
    cfg = load_config(
        config_file=path,
        overrides={"data": {"root": "from/flags"}, "trainer": {"batch_size": 5}},
    )
    assert cfg.data.root == "from/flags"
    assert cfg.data.span == 1  # from the file, not touched by the flags
    assert cfg.trainer.train_steps == 7  # from the file
    assert cfg.trainer.batch_size == 5  # from the flags
    assert cfg.trainer.eval_steps == 10  # from the profile


def test_bad_override_is_reported_as_command_line():
    msg = error_of(overrides={"data": {"span": "latest"}})
    assert msg.startswith("command line: data.span:")
    assert "expected an integer or null" in msg


# --- errors a user makes in a --config file ----------------------------------------------------


def test_unknown_top_level_key_names_file_key_and_suggestion(tmp_path):
    path = write(tmp_path, "tranier:\n  train_steps: 3\n")
    msg = error_of(config_file=path)
    assert msg.startswith(f"{path}: tranier: unknown key")
    assert "did you mean 'trainer'?" in msg


def test_unknown_nested_key_names_file_dotted_key_and_suggestion(tmp_path):
    path = write(tmp_path, "trainer:\n  bach_size: 3\n")
    msg = error_of(config_file=path)
    assert path in msg
    assert "trainer.bach_size" in msg
    assert "did you mean 'batch_size'?" in msg
    assert "expected one of: train_steps, epochs, eval_steps, batch_size" in msg


def test_unknown_deep_key(tmp_path):
    path = write(tmp_path, "data: {splits: {mdoe: hash}}\n")
    msg = error_of(config_file=path)
    assert f"{path}: data.splits.mdoe: unknown key (did you mean 'mode'?)" in msg


def test_internal_field_is_not_a_yaml_key(tmp_path):
    msg = error_of(config_file=write(tmp_path, "sources: [a]\n"))
    assert "sources: unknown key" in msg


def test_wrong_type_names_key_and_expected_type(tmp_path):
    path = write(tmp_path, 'trainer: {batch_size: "abc"}\n')
    msg = error_of(config_file=path)
    assert msg == f"{path}: trainer.batch_size: expected an integer, got 'abc'"


def test_bool_is_refused_for_an_int(tmp_path):
    path = write(tmp_path, "trainer: {batch_size: true}\n")
    msg = error_of(config_file=path)
    assert msg == f"{path}: trainer.batch_size: expected an integer, got True"


def test_bool_is_refused_for_a_float_and_an_optional_int(tmp_path):
    msg = error_of(config_file=write(tmp_path, "trainer: {learning_rate: false}\n"))
    assert "trainer.learning_rate: expected a number, got False" in msg
    msg = error_of(config_file=write(tmp_path, "data: {span: true}\n", "b.yaml"))
    assert "data.span: expected an integer or null, got True" in msg


def test_string_is_refused_for_a_bool(tmp_path):
    msg = error_of(config_file=write(tmp_path, "enable_cache: 'no'\n"))
    assert "enable_cache: expected true/false, got 'no'" in msg


def test_list_items_are_checked_with_their_index(tmp_path):
    msg = error_of(config_file=write(tmp_path, "model: {hidden_units: [16, x]}\n"))
    assert "model.hidden_units[1]: expected an integer, got 'x'" in msg


def test_section_given_as_scalar_is_refused(tmp_path):
    msg = error_of(config_file=write(tmp_path, "trainer: 5\n"))
    assert "trainer: expected a mapping, got 5" in msg


def test_literal_out_of_choices_names_the_allowed_values(tmp_path):
    path = write(tmp_path, "model: {task: clustering}\n")
    msg = error_of(config_file=path)
    assert path in msg
    assert "model.task" in msg
    assert "'multiclass', 'binary', 'regression'" in msg
    assert "'clustering'" in msg


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "pipeline_name: x\ntrainer:\n  batch_size: [1\n  x: 2\n")
    msg = error_of(config_file=path)
    assert msg.startswith(f"{path}: not valid YAML at line ")
    assert "line 4" in msg


def test_tab_indented_yaml_is_reported_not_raised_raw(tmp_path):
    path = write(tmp_path, "trainer:\n\tbatch_size: 3\n")
    msg = error_of(config_file=path)
    assert msg.startswith(f"{path}: not valid YAML")
    assert "line 2" in msg


def test_missing_config_file(tmp_path):
    path = str(tmp_path / "nope.yaml")
    assert error_of(config_file=path) == f"{path}: no such configuration file"


def test_config_file_that_is_a_directory(tmp_path):
    msg = error_of(config_file=str(tmp_path))
    assert msg.startswith(f"{tmp_path}: cannot read")


@pytest.mark.parametrize("name", ["nope", "../local", "local.yaml", ""])
def test_unknown_profile_lists_the_known_ones(name):
    msg = error_of(profile=name)
    assert msg.startswith(f"unknown profile {name!r}")
    known = sorted(p.stem for p in config_mod.PROFILES_DIR.glob("*.yaml"))
    assert "local" in known
    assert msg.endswith("known profiles: " + ", ".join(known))


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path, text):
    path = write(tmp_path, text)
    assert error_of(config_file=path) == f"{path}: expected a mapping of keys at the top level"


# --- cross-field rules (PipelineConfig.validate) --------------------------------------------


def test_label_in_features_is_refused(tmp_path):
    path = write(tmp_path, "model: {features: [island, species]}\n")
    msg = error_of(config_file=path)
    assert msg == f"{path}: model.features: must not contain the label 'species'"


def test_features_without_the_label_are_accepted(tmp_path):
    path = write(tmp_path, "model: {features: [island, bill_length_mm]}\n")
    assert load_config(config_file=path).model.features == ["island", "bill_length_mm"]


@pytest.mark.parametrize(
    "text,key",
    [
        ("trainer: {batch_size: 0}", "trainer.batch_size"),
        ("trainer: {batch_size: -4}", "trainer.batch_size"),
        ("trainer: {train_steps: 0}", "trainer.train_steps"),
        ("trainer: {epochs: 0}", "trainer.epochs"),
        ("trainer: {distribution: {workers: 0}}", "trainer.distribution.workers"),
        ("beam: {direct_num_workers: 0}", "beam.direct_num_workers"),
    ],
)
def test_non_positive_counts_are_refused(tmp_path, text, key):
    path = write(tmp_path, text + "\n")
    msg = error_of(config_file=path)
    assert msg.startswith(f"{path}: {key}: expected a positive integer, got ")


def test_non_positive_learning_rate_and_negative_span(tmp_path):
    assert "trainer.learning_rate: expected > 0" in error_of(
        config_file=write(tmp_path, "trainer: {learning_rate: 0}\n")
    )
    assert error_of(overrides={"data": {"span": -1}}) == (
        "command line: data.span: expected an integer >= 0 or null, got -1"
    )


def test_span_pattern_needs_the_placeholder(tmp_path):
    path = write(tmp_path, "data: {span_pattern: span-1}\n")
    assert error_of(config_file=path) == f"{path}: data.span_pattern: must contain {{SPAN}}"


def test_split_names_must_be_train_and_eval(tmp_path):
    path = write(tmp_path, "data: {splits: {folders: {test: Split-test}}}\n")
    msg = error_of(config_file=path)
    # Mappings merge, so the profile's train/eval are still there next to the new one.
    assert msg == (
        f"{path}: data.splits.folders: expected the splits 'train' and 'eval', "
        "got ['eval', 'test', 'train']"
    )


def test_hash_mode_checks_the_hash_bucket_names(tmp_path):
    path = write(tmp_path, "data: {splits: {mode: hash, hash_buckets: {valid: 1}}}\n")
    msg = error_of(config_file=path)
    assert "data.splits.hash: expected the splits 'train' and 'eval'" in msg
    assert "'valid'" in msg


def test_hash_buckets_must_be_positive(tmp_path):
    path = write(tmp_path, "data: {splits: {mode: hash, hash_buckets: {eval: 0}}}\n")
    assert error_of(config_file=path) == (
        f"{path}: data.splits.hash_buckets.eval: expected a positive integer, got 0"
    )


def test_threshold_needs_a_bound(tmp_path):
    path = write(tmp_path, """\
        evaluator:
          thresholds:
            - {metric: auc, lower_bound: null, max_regression: null}
        """)
    msg = error_of(config_file=path)
    assert "evaluator.thresholds[0]: set lower_bound, upper_bound or max_regression" in msg


def test_validate_on_a_config_built_in_code():
    cfg = PipelineConfig()
    cfg.validate()  # the defaults are valid
    cfg.model.features = ["label", "x"]
    with pytest.raises(ConfigError, match=r"^<config>: model.features: must not contain"):
        cfg.validate()


def test_where_names_the_last_layer_read(tmp_path):
    assert PipelineConfig().where == "<config>"
    assert load_config().where == str(config_mod.PROFILES_DIR / "local.yaml")
    path = write(tmp_path, "trainer: {train_steps: 7}\n")
    assert load_config(config_file=path).where == path
    assert load_config(config_file=path, overrides={"data": {"span": 1}}).where == "command line"


# --- round trip ----------------------------------------------------------------------------


def test_config_to_dict_is_plain_data_without_sources():
    data = config_to_dict(load_config())
    assert "sources" not in data
    assert data["model"]["label"] == "species"
    assert data["trainer"]["distribution"] == {
        "workers": 1, "communication": "auto", "max_restarts": 2,
        "startup_timeout_seconds": 120.0, "collective_timeout_seconds": None,
        "progress_timeout_seconds": 300.0,
    }
    assert data["evaluator"]["thresholds"][0]["metric"] == "sparse_categorical_accuracy"
    # Plain YAML, no Python-specific tags.
    assert "!!python" not in yaml.safe_dump(data)


def test_config_to_dict_round_trips_through_a_config_file(tmp_path):
    original = load_config(
        config_file=write(tmp_path, """\
            model: {features: [island, bill_length_mm], task: multiclass, hidden_units: [5]}
            trainer: {train_steps: 11, learning_rate: 0.5, distribution: {communication: ring}}
            data: {span: 2, splits: {mode: hash, hash_buckets: {train: 3, eval: 2}}}
            evaluator:
              metrics: [ExampleCount, SparseCategoricalCrossentropy]
              slices: [[island], [sex, island]]
              thresholds:
                - metric: sparse_categorical_crossentropy
                  lower_bound: null
                  upper_bound: 0.9
                  higher_is_better: false
            beam: {extra_args: [--foo=1]}
            """, "first.yaml")
    )
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(yaml.safe_dump(config_to_dict(original), sort_keys=False))
    again = load_config(config_file=str(dumped))
    assert config_to_dict(again) == config_to_dict(original)
    assert again.evaluator.thresholds[0].upper_bound == 0.9
    assert again.evaluator.thresholds[0].max_regression == 0.0  # dataclass default, kept


# --- the CLI -------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "pipeline.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_main_in_process(args: list[str]) -> tuple[str, str, str]:
    """Runs `pipeline.cli.main(args)` in a fresh interpreter; stdout ends with a report line."""
    code = (
        "import sys, json\n"
        "from pipeline.cli import main\n"
        "try:\n"
        f"    rc = main({args!r})\n"
        "except SystemExit as e:\n"
        "    rc = e.code\n"
        "heavy = sorted(m for m in ('tensorflow', 'tfx', 'apache_beam') if m in sys.modules)\n"
        "print('REPORT', json.dumps({'rc': rc, 'heavy': heavy}))\n"
    )
    proc = subprocess.run(
        [PYTHON, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    out_lines = proc.stdout.splitlines()
    assert out_lines and out_lines[-1].startswith("REPORT "), (proc.stdout, proc.stderr)
    return "\n".join(out_lines[:-1]), proc.stderr, out_lines[-1][len("REPORT "):]


@pytest.fixture
def bad_config(tmp_path) -> str:
    return write(tmp_path, "trainer:\n  bach_size: 3\n", "bad.yaml")


def test_cli_run_with_bad_config_prints_one_error_line(bad_config):
    proc = run_cli("run", "--config", bad_config)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert bad_config in lines[0]
    assert "trainer.bach_size" in lines[0]
    assert "did you mean 'batch_size'?" in lines[0]


def test_cli_run_with_bad_config_does_not_import_tensorflow(bad_config):
    out, err, report = run_main_in_process(["run", "--config", bad_config])
    assert json.loads(report) == {"rc": 2, "heavy": []}
    assert out == ""
    assert err.startswith("error: ") and "trainer.bach_size" in err


def test_cli_run_json_with_bad_config(bad_config):
    proc = run_cli("run", "--json", "--config", bad_config)
    assert proc.returncode == 2
    assert proc.stderr == ""
    result = json.loads(proc.stdout)  # exactly one JSON document, nothing else
    assert result["status"] == "failed"
    assert bad_config in result["error"]
    assert "trainer.bach_size" in result["error"]

    out, err, report = run_main_in_process(["run", "--json", "--config", bad_config])
    assert json.loads(report) == {"rc": 2, "heavy": []}
    assert json.loads(out)["status"] == "failed"
    assert err == ""


def test_cli_bad_span_flag_is_reported_like_a_config_error():
    proc = run_cli("run", "--span", "-3")
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: ")
    assert line.endswith("data.span: expected an integer >= 0 or null, got -3")


def test_cli_unknown_profile():
    proc = run_cli("run", "--profile", "nope")
    assert proc.returncode == 2
    known = ", ".join(sorted(p.stem for p in config_mod.PROFILES_DIR.glob("*.yaml")))
    assert "local" in known.split(", ")
    assert proc.stderr.splitlines() == [f"error: unknown profile 'nope'; known profiles: {known}"]


def test_cli_help_exits_zero_without_tensorflow():
    proc = run_cli("--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: pipeline")
    assert "run" in proc.stdout and "config" in proc.stdout

    script = os.path.join(os.path.dirname(PYTHON), "pipeline")
    if os.path.exists(script):  # the console script of [project.scripts]
        proc = subprocess.run([script, "--help"], cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0 and proc.stdout.startswith("usage: pipeline")

    out, _, report = run_main_in_process(["--help"])
    assert json.loads(report) == {"rc": 0, "heavy": []}
    assert out.startswith("usage: pipeline")


def test_cli_config_prints_the_resolved_config_as_yaml(tmp_path):
    path = write(tmp_path, "trainer: {train_steps: 7}\n")
    proc = run_cli("config", "--config", path)
    assert proc.returncode == 0, proc.stderr
    printed = yaml.safe_load(proc.stdout)
    assert printed == config_to_dict(load_config(config_file=path))
    assert printed["trainer"]["train_steps"] == 7
    assert printed["trainer"]["batch_size"] == 32


def test_a_rule_broken_by_a_flag_names_the_command_line():
    msg = error_of(overrides={"data": {"span": -3}})
    assert msg == "command line: data.span: expected an integer >= 0 or null, got -3"


def test_a_rule_broken_by_the_overlay_names_the_overlay_not_the_profile(tmp_path):
    path = write(tmp_path, "trainer: {epochs: 0}\n")
    assert error_of(config_file=path).startswith(f"{path}: trainer.epochs:")


def test_exponent_floats_that_yaml_reads_as_strings_are_numbers(tmp_path):
    path = write(tmp_path, "trainer: {learning_rate: 1e-3}\n")
    assert load_config(config_file=path).trainer.learning_rate == 0.001
    bad = write(tmp_path, "trainer: {learning_rate: fast}\n", name="bad.yaml")
    assert "trainer.learning_rate: expected a number" in error_of(config_file=bad)


def test_an_empty_feature_list_is_refused(tmp_path):
    path = write(tmp_path, "model: {features: []}\n")
    assert error_of(config_file=path).startswith(f"{path}: model.features: empty")


# --- every key in its range, checked when the layer holding it is read ----------------------

SCHEMA = os.path.join(REPO, "data", "schema", "schema.pbtxt")


@pytest.mark.parametrize("text, message", [
    ("trainer: {seed: -1}", "trainer.seed: expected an integer >= 0, got -1"),
    ("trainer: {seed: 4294967296}",
     "trainer.seed: expected an integer <= 4294967295, got 4294967296"),
    ("trainer: {learning_rate: .nan}", "trainer.learning_rate: expected a finite number, got nan"),
    ("trainer: {learning_rate: .inf}", "trainer.learning_rate: expected a finite number, got inf"),
    ("trainer: {learning_rate: -0.1}", "trainer.learning_rate: expected > 0, got -0.1"),
    ("trainer: {normalization_sample: 0}",
     "trainer.normalization_sample: expected a positive integer, got 0"),
    ("trainer: {eval_steps: 0}", "trainer.eval_steps: expected a positive integer, got 0"),
    ("trainer: {distribution: {max_restarts: -1}}",
     "trainer.distribution.max_restarts: expected an integer >= 0, got -1"),
    ("trainer: {distribution: {startup_timeout_seconds: 0}}",
     "trainer.distribution.startup_timeout_seconds: expected > 0, got 0"),
    ("trainer: {distribution: {collective_timeout_seconds: -5}}",
     "trainer.distribution.collective_timeout_seconds: expected > 0 or null, got -5"),
    ("model: {embedding_dim: 0}", "model.embedding_dim: expected a positive integer, got 0"),
    ("model: {embedding_threshold: -1}",
     "model.embedding_threshold: expected an integer >= 0, got -1"),
    ("model: {hash_buckets: 1}", "model.hash_buckets: expected an integer >= 2, got 1"),
    ("model: {hidden_units: [16, 0]}",
     "model.hidden_units[1]: expected a positive integer, got 0"),
    ("model: {hidden_units: [-3]}", "model.hidden_units[0]: expected a positive integer, got -3"),
    ("model: {features: [island, island]}", "model.features: 'island' is listed twice"),
    ("model: {features: [island, '']}", "model.features[1]: expected a non-empty string, got ''"),
    ("model: {label: ''}", "model.label: expected a non-empty string, got ''"),
    ("data: {root: ''}", "data.root: expected a non-empty string, got ''"),
    ("data: {file_pattern: ''}", "data.file_pattern: expected a non-empty string, got ''"),
    ("data: {schema: ''}", "data.schema: expected a non-empty string, got ''"),
    ("data: {splits: {folders: {eval: ''}}}",
     "data.splits.folders.eval: expected a non-empty string, got ''"),
    ("evaluator: {metrics: [ExampleCount, ExampleCount]}",
     "evaluator.metrics: 'ExampleCount' is listed twice; list each metric once"),
    ("evaluator: {metrics: [ExampleCount, '']}",
     "evaluator.metrics[1]: expected a non-empty string, got ''"),
    ("evaluator: {slices: [[]]}", "evaluator.slices[0]: expected at least 1 item(s), got []"),
    ("evaluator: {slices: [[island, island]]}",
     "evaluator.slices[0]: 'island' is listed twice; list each feature of a slice once"),
    ("evaluator: {slices: [[island, sex], [sex, island]]}",
     "evaluator.slices: ['sex', 'island'] is listed twice (as slices[0])"),
    ("evaluator: {thresholds: [{metric: ''}]}",
     "evaluator.thresholds[0].metric: expected a non-empty string, got ''"),
    ("evaluator: {thresholds: [{lower_bound: .nan}]}",
     "evaluator.thresholds[0].lower_bound: expected a finite number, got nan"),
    ("evaluator: {thresholds: [{max_regression: -0.01}]}",
     "evaluator.thresholds[0].max_regression: expected >= 0 or null, got -0.01"),
    ("pusher: {base_path: ''}", "pusher.base_path: expected a non-empty string, got ''"),
    ("pusher: {serving: {poll_seconds: .inf}}",
     "pusher.serving.poll_seconds: expected a finite number, got inf"),
    ("validation: {sample_size: 0}", "validation.sample_size: expected a positive integer, got 0"),
    ("beam: {extra_args: ['']}", "beam.extra_args[0]: expected a non-empty string, got ''"),
    ("pipeline_name: ''", "pipeline_name: expected a non-empty string, got ''"),
    ("work_dir: ''", "work_dir: expected a non-empty string, got ''"),
    ("metadata_path: ''", "metadata_path: expected a non-empty string, got ''"),
])
def test_a_value_out_of_its_range_is_one_line_naming_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text + "\n")
    assert error_of(config_file=path) == f"{path}: {message}"


def test_a_linear_model_has_no_hidden_layer(tmp_path):
    assert load_config(config_file=write(tmp_path, "model: {hidden_units: []}\n")).model \
        .hidden_units == []


# --- a gate that would measure nothing, or the wrong thing ---------------------------------


@pytest.mark.parametrize("text, message", [
    ("evaluator: {thresholds: []}",
     "evaluator.thresholds: empty: every model would be blessed; set at least one threshold"),
    ("evaluator: {metrics: []}", "evaluator.metrics: empty; list the metric classes to "
     "compute, e.g. [ExampleCount, SparseCategoricalAccuracy]"),
    ("evaluator: {thresholds: [{lower_bound: 0.9, upper_bound: 0.5}]}",
     "evaluator.thresholds[0].upper_bound: 0.5 < lower_bound 0.9: no model can pass"),
    ("evaluator: {thresholds: [{lower_bound: 0}]}",
     "evaluator.thresholds[0].lower_bound: 0 lets every model pass: "
     "sparse_categorical_accuracy is never below 0; raise it, or set null"),
    ("evaluator: {thresholds: [{lower_bound: 1.2}]}",
     "evaluator.thresholds[0].lower_bound: 1.2 can never be reached: "
     "sparse_categorical_accuracy is at most 1"),
    ("evaluator: {thresholds: [{lower_bound: null, upper_bound: 1}]}",
     "evaluator.thresholds[0].upper_bound: 1 lets every model pass: "
     "sparse_categorical_accuracy is never above 1; lower it, or set null"),
    ("evaluator: {thresholds: [{lower_bound: null, upper_bound: -0.1}]}",
     "evaluator.thresholds[0].upper_bound: -0.1 can never be met: "
     "sparse_categorical_accuracy is never below 0"),
    ("evaluator: {thresholds: [{max_regression: 1}]}",
     "evaluator.thresholds[0].max_regression: 1 lets every regression pass: "
     "sparse_categorical_accuracy cannot move by more than 1; lower it, or set null"),
    ("evaluator: {thresholds: [{metric: example_count, lower_bound: 0}]}",
     "evaluator.thresholds[0].lower_bound: 0 lets every model pass: example_count is never "
     "below 0; raise it, or set null"),
    ("evaluator: {thresholds: [{higher_is_better: false}]}",
     "evaluator.thresholds[0].higher_is_better: false, but a higher sparse_categorical_accuracy "
     "is better: max_regression would refuse improvements and pass regressions"),
    ("evaluator: {thresholds: [{metric: auc}]}",
     "evaluator.thresholds[0].metric: 'auc' is not among the metrics computed (ExampleCount "
     "(example_count), SparseCategoricalAccuracy (sparse_categorical_accuracy)); add its class "
     "to evaluator.metrics"),
    ("evaluator: {thresholds: [{lower_bound: 0.9}, {lower_bound: null, upper_bound: 0.8}]}",
     "evaluator.thresholds[1]: with thresholds[0] on sparse_categorical_accuracy: together "
     "they need >= 0.9 and <= 0.8: no model can pass"),
    ("evaluator: {metrics: [ExampleCount, CategoricalAccuracy], "
     "thresholds: [{metric: categorical_accuracy}]}",
     "evaluator.metrics[1]: CategoricalAccuracy expects one-hot labels, but the labels here "
     "are class ids (use SparseCategoricalAccuracy)"),
    ("model: {task: regression}",
     "evaluator.metrics[1]: SparseCategoricalAccuracy does not measure a regression model "
     "(model.task): it reads the predictions of multiclass models"),
    ("data: {splits: {folders: {eval: Split-train}}}",
     "data.splits.folders: train and eval are both 'Split-train': the model would be "
     "evaluated on its training data"),
    ("validation: {contract: {signatures: {}}}",
     "validation.contract.signatures: expected at least one signature"),
    ("validation: {contract: {signatures: {serving_default: "
     "{outputs: {probabilities: {dtype: float32}}}}}}",
     "validation.contract.signatures.serving_default.inputs: empty: every input of the model "
     "would be a breaking change, so no model can pass"),
    # Read from the schema.
    ("evaluator: {slices: [[islnd]]}",
     f"evaluator.slices[0]: 'islnd' is not a feature of the schema {SCHEMA} (did you mean "
     "'island'?); TFMA would compute no such slice and its thresholds would not be checked"),
    ("evaluator: {slices: [[island], [body_mass_g]]}",
     "evaluator.slices[1]: 'body_mass_g' is a FLOAT feature: one slice per distinct value, "
     "each of a few examples; slice by a categorical feature"),
    ("model: {label: specis}",
     f"model.label: 'specis' is not a feature of the schema {SCHEMA} (did you mean "
     "'species'?)"),
    ("model: {features: [island, bill_lenght_mm]}",
     f"model.features[1]: 'bill_lenght_mm' is not a feature of the schema {SCHEMA} (did you "
     "mean 'bill_length_mm'?)"),
    ("model: {label: island}",
     "model.label: label 'island': multiclass classification needs an INT label of class ids "
     f"0..n-1 (schema {SCHEMA})"),
    ("data: {schema: nope/schema.pbtxt}",
     f"data.schema: {os.path.abspath('nope/schema.pbtxt')}: cannot read the schema: "
     "No such file or directory"),
])
def test_a_gate_that_measures_nothing_is_refused_with_the_reason(tmp_path, text, message):
    path = write(tmp_path, text + "\n")
    assert error_of(config_file=path) == f"{path}: {message}"


def test_thresholds_that_can_hold_together_are_accepted(tmp_path):
    # Both hold: build_eval_config keeps the strictest (tests/unit/test_eval_config.py).
    path = write(tmp_path, "evaluator: {thresholds: [{lower_bound: 0.99}, {lower_bound: 0.5}, "
                           "{metric: SparseCategoricalAccuracy, lower_bound: 0.7, "
                           "upper_bound: 1.0e-0, max_regression: null}]}\n")
    with pytest.raises(ConfigError, match=r"thresholds\[2\].upper_bound: 1 lets every model"):
        load_config(config_file=path)
    path = write(tmp_path, "evaluator: {thresholds: [{lower_bound: 0.99}, {lower_bound: 0.5}, "
                           "{metric: SparseCategoricalAccuracy, lower_bound: 0.7, "
                           "upper_bound: 0.999, max_regression: null}]}\n", "ok.yaml")
    assert len(load_config(config_file=path).evaluator.thresholds) == 3


def test_a_metric_class_outside_the_table_is_left_to_the_build(tmp_path):
    # Its reported key is TFMA's to tell: build_pipeline asks it (metric_name).
    path = write(tmp_path, "evaluator: {metrics: [ExampleCount, MeanLabel], "
                           "thresholds: [{metric: mean_label, lower_bound: 0.5}]}\n")
    assert load_config(config_file=path).evaluator.metrics == ["ExampleCount", "MeanLabel"]


def test_a_schema_that_is_not_a_schema(tmp_path):
    bad = tmp_path / "schema.pbtxt"
    bad.write_text("feature { nme: 'x' }\n")
    path = write(tmp_path, f"data: {{schema: {bad}}}\n")
    assert error_of(config_file=path).startswith(
        f"{path}: data.schema: {bad}: not a valid schema: ")


def test_an_overlay_with_its_own_schema_label_and_metrics(tmp_path):
    from data.synthetic import synthetic_schema, write_schema

    schema = str(tmp_path / "schema.pbtxt")
    write_schema(schema, synthetic_schema())
    path = write(tmp_path, f"""\
        data: {{schema: {schema}}}
        model: {{label: label, task: binary}}
        evaluator:
          metrics: [ExampleCount, BinaryAccuracy, AUC]
          slices: []
          thresholds: [{{metric: AUC, lower_bound: 0.7}}]
        """)
    cfg = load_config(config_file=path)
    assert (cfg.model.label, cfg.data.schema) == ("label", schema)
    # The same overlay without its schema: the penguins' has no 'label'.
    text = open(path).read().replace(f"data: {{schema: {schema}}}\n", "")
    other = write(tmp_path, text, "no_schema.yaml")
    assert error_of(config_file=other).startswith(
        f"{other}: model.label: 'label' is not a feature of the schema {SCHEMA}")


def test_an_edited_schema_is_read_again(tmp_path):
    schema = tmp_path / "schema.pbtxt"
    original = open(SCHEMA).read()
    schema.write_text(original)
    path = write(tmp_path, f"data: {{schema: {schema}}}\n")
    assert load_config(config_file=path).evaluator.slices == [["island"]]
    feature = 'name: "island"\n  type: BYTES'  # the feature, not its string_domain
    assert original.count(feature) == 1
    schema.write_text(original.replace(feature, 'name: "isle"\n  type: BYTES'))
    assert error_of(config_file=path).startswith(
        f"{path}: evaluator.slices[0]: 'island' is not a feature of the schema {schema}")


def test_the_schema_rules_are_skipped_on_request(tmp_path):
    # `pipeline release` neither trains nor evaluates, and may run where data/ is not.
    path = write(tmp_path, "data: {schema: nope.pbtxt}\n")
    assert load_config(config_file=path, check_schema=False).data.schema == "nope.pbtxt"
    assert "data.schema" in error_of(config_file=path)


def test_cli_run_refuses_a_gate_that_measures_nothing_before_tensorflow(tmp_path):
    path = write(tmp_path, "evaluator: {slices: [[islnd]]}\n", "gate.yaml")
    proc = run_cli("run", "--config", path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"error: {path}: evaluator.slices[0]: 'islnd' is not a feature")
    _, err, report = run_main_in_process(["run", "--config", path])
    assert json.loads(report) == {"rc": 2, "heavy": []}
    assert "did you mean 'island'?" in err
