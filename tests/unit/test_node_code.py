"""What re-runs a custom node when its code or the curated schema changes: the code fingerprint
of each node (its package and every project module it imports), the schema's content digest,
both exec properties of the built pipeline, which TFX's cache key hashes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from pipeline.build import NODE_CODE
from pipeline.code_fingerprint import code_files, code_fingerprint

REPO = Path(__file__).resolve().parents[2]


def _names(package: str, root: Path = REPO) -> set[str]:
    return {str(p.relative_to(root)) for p in code_files(package, root)}


def test_the_pusher_runs_its_package_and_every_project_module_it_imports():
    names = _names("components.pusher")
    assert {
        "components/__init__.py", "components/pusher/component.py",
        "components/serving/__init__.py", "components/serving/release.py",
        "components/metadata/store.py", "components/evaluator/__init__.py",
        "components/evaluator/metrics.py", "components/signature/validate.py",
    } <= names
    # Modules it never imports.
    assert not any(n.startswith(("components/trainer/", "components/data_validation/"))
                   for n in names)
    assert "components/evaluator/baseline.py" not in names


def test_a_node_package_counts_whole_with_modules_started_as_processes():
    # `python -m components.trainer.worker` is started, not imported, by the launcher.
    assert "components/trainer/worker.py" in _names("components.trainer")
    assert "components/signature/probe.py" in _names("components.signature")


@pytest.fixture
def tree(tmp_path) -> Path:
    for package in ("components", "pipeline", "runners"):
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _fingerprints(root: Path) -> dict[str, str]:
    return {node: code_fingerprint(package, root) for node, package in NODE_CODE.items()}


def test_an_edit_re_runs_exactly_the_nodes_whose_code_it_is(tree):
    before = _fingerprints(tree)
    assert before == {node: code_fingerprint(p) for node, p in NODE_CODE.items()}
    with open(tree / "components" / "serving" / "records.py", "a") as f:
        f.write("\n# edited\n")
    after = _fingerprints(tree)
    changed = {node for node in before if before[node] != after[node]}
    assert changed == {"SignatureValidator", "ServingPusher", "StableBaseline"}

    with open(tree / "components" / "data_validation" / "anomalies.py", "a") as f:
        f.write("\n# edited\n")
    again = _fingerprints(tree)
    assert {node for node in after if after[node] != again[node]} == {"DataValidationGate"}


def test_lazy_imports_inside_functions_count(tmp_path):
    (tmp_path / "components" / "a").mkdir(parents=True)
    (tmp_path / "components" / "__init__.py").write_text("")
    (tmp_path / "components" / "a" / "__init__.py").write_text(
        "def f():\n    from components.b import g\n    return g\n")
    (tmp_path / "components" / "b.py").write_text("g = 1\n")
    (tmp_path / "components" / "c.py").write_text("h = 1\n")
    before = code_fingerprint("components.a", tmp_path)
    (tmp_path / "components" / "c.py").write_text("h = 2\n")
    assert code_fingerprint("components.a", tmp_path) == before
    (tmp_path / "components" / "b.py").write_text("g = 2\n")
    assert code_fingerprint("components.a", tmp_path) != before


@pytest.fixture(scope="module")
def built():
    from components.tf_process import defer_tfx_components_init, prepare_tf_process

    prepare_tf_process()
    defer_tfx_components_init()
    from pipeline.build import build_pipeline
    from pipeline.config import load_config

    cfg = load_config()
    pipeline = build_pipeline(cfg)
    return cfg, {c.id: c for c in pipeline.components}, pipeline


def test_each_custom_node_has_its_code_fingerprint_as_an_exec_property(built):
    _, nodes, _ = built
    for node, package in NODE_CODE.items():
        if node == "Trainer":  # run_fn's settings: custom_config
            config = json.loads(nodes[node].exec_properties["custom_config"])
            assert config["code_fingerprint"] == code_fingerprint(package)
        else:
            assert nodes[node].exec_properties["code_fingerprint"] == code_fingerprint(package)


def test_the_schema_import_is_keyed_on_the_schema_content(built):
    cfg, nodes, _ = built
    importer = nodes["ImportSchemaGen"]
    assert importer.exec_properties["schema_sha256"] == hashlib.sha256(
        Path(cfg.data.schema).read_bytes()).hexdigest()
    assert list(importer.outputs) == ["schema"]  # the key ExampleValidator and Trainer read


def test_tfx_cache_key_hashes_the_compiled_fingerprint(built, tmp_path):
    """TFX looks a node up in its cache under a key over its compiled parameters
    (tfx.orchestration.portable.cache_utils.get_cache_context): another fingerprint, another
    key, so the node runs again; the same fingerprint, the same key, so it is cached."""
    from tfx.dsl.compiler import compiler
    from tfx.orchestration import metadata
    from tfx.orchestration.portable import cache_utils
    from tfx.orchestration.portable.inputs_utils import resolve_parameters

    ir = compiler.Compiler().compile(built[2])
    node = next(n.pipeline_node for n in ir.nodes
                if n.pipeline_node.node_info.id == "ServingPusher")
    params = resolve_parameters(node.parameters)
    assert params["code_fingerprint"] == code_fingerprint(NODE_CODE["ServingPusher"])
    with metadata.Metadata(metadata.sqlite_metadata_connection_config(
            str(tmp_path / "m.sqlite"))) as m:
        def key(p):
            return cache_utils.get_cache_context(m, node, ir.pipeline_info, parameters=p).name

        assert key(params) == key(dict(params))
        assert key(params) != key({**params, "code_fingerprint": "0" * 16})


def test_a_schema_edited_after_the_build_is_refused_naming_it(tmp_path):
    from components.schema import SchemaChangedError, check_schema_bytes, schema_digest

    path = tmp_path / "schema.pbtxt"
    built_with = schema_digest(b"feature { name: 'a' }")
    check_schema_bytes(str(path), b"feature { name: 'a' }", built_with)
    with pytest.raises(SchemaChangedError, match=f"^{path}: changed after the pipeline"):
        check_schema_bytes(str(path), b"feature { name: 'b' }", built_with)
