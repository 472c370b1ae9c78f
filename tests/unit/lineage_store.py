"""A hand-built ML Metadata store laid out as LocalDagRunner lays out this pipeline's runs, for
the lineage and runs tests: the ten nodes with their real input and output keys and artifact
types, contexts `pipeline`, `pipeline_run` (a child of the pipeline's), `node` and a cache
key per execution that ran; a node found cached outputs the artifact an earlier run made (as
TFX records it: a CACHED execution with OUTPUT events on it). Each run has a RunRequest with
its provenance and DataFile inputs, and once over its evaluation's metrics, as `pipeline run`
records them."""

from __future__ import annotations

import hashlib
import os
from types import SimpleNamespace

from ml_metadata.proto import metadata_store_pb2 as pb

from components.metadata import (
    DataFile,
    OperationRecord,
    RunProvenance,
    RunRequest,
    open_store,
    record_operation,
)
from components.metadata.run_requests import (
    link_run_request,
    record_run_metrics,
    record_run_request,
)

# node -> (execution type, [(input key, producer node, its output key)], [(key, type)])
NODES = {
    "ImportExampleGen": ("tfx.components.example_gen.import_example_gen.component."
                         "ImportExampleGen", [], [("examples", "Examples")]),
    "ImportSchemaGen": ("components.schema.component.CuratedSchemaImporter", [],
                        [("schema", "Schema")]),
    "StatisticsGen": ("tfx.components.statistics_gen.component.StatisticsGen",
                      [("examples", "ImportExampleGen", "examples")],
                      [("statistics", "ExampleStatistics")]),
    "ExampleValidator": ("tfx.components.example_validator.component.ExampleValidator",
                         [("schema", "ImportSchemaGen", "schema"),
                          ("statistics", "StatisticsGen", "statistics")],
                         [("anomalies", "ExampleAnomalies")]),
    "DataValidationGate": ("components.data_validation.component.DataValidationGate",
                           [("anomalies", "ExampleValidator", "anomalies"),
                            ("schema", "ImportSchemaGen", "schema"),
                            ("statistics", "StatisticsGen", "statistics")], []),
    "Trainer": ("tfx.components.trainer.component.Trainer",
                [("examples", "ImportExampleGen", "examples"),
                 ("schema", "ImportSchemaGen", "schema")],
                [("model", "Model"), ("model_run", "ModelRun")]),
    "StableBaseline": ("components.baseline.component.StableBaseline",
                       [("candidate", "Trainer", "model")], [("baseline", "Model")]),
    "Evaluator": ("tfx.components.evaluator.component.Evaluator",
                  [("baseline_model", "StableBaseline", "baseline"),
                   ("examples", "ImportExampleGen", "examples"), ("model", "Trainer", "model")],
                  [("blessing", "ModelBlessing"), ("evaluation", "ModelEvaluation")]),
    "SignatureValidator": ("components.signature.component.SignatureValidator",
                           [("baseline_model", "StableBaseline", "baseline"),
                            ("examples", "ImportExampleGen", "examples"),
                            ("model", "Trainer", "model")], [("verdict", "ModelBlessing")]),
    "ServingPusher": ("components.pusher.component.ServingPusher",
                      [("evaluation", "Evaluator", "evaluation"),
                       ("examples", "ImportExampleGen", "examples"),
                       ("model", "Trainer", "model"),
                       ("model_blessing", "Evaluator", "blessing"),
                       ("signature_verdict", "SignatureValidator", "verdict")],
                      [("pushed_model", "PushedModel")]),
}
DATA_NODES = ("ImportExampleGen", "StatisticsGen", "ExampleValidator", "DataValidationGate")
TRAIN_NODES = ("Trainer", "StableBaseline", "Evaluator", "SignatureValidator", "ServingPusher")


def span_files(data_root: str, span: int) -> tuple[DataFile, ...]:
    names = [f"span-{span}/Split-{split}/data.tfrecord.gz" for split in ("eval", "train")]
    return tuple(DataFile(n, os.path.join(data_root, n), 1000 + i,
                          hashlib.sha256(f"{span}:{n}".encode()).hexdigest())
                 for i, n in enumerate(names))


class LineageStore:
    """Runs of pipeline `name` into a SQLite store at `path`."""

    def __init__(self, path: str, base: str, name: str = "penguin",
                 data_root: str = "/data/penguins"):
        self.path, self.base, self.name, self.data_root = path, base, name, data_root
        self.store = open_store(path, create=True)
        s = self.store
        self.types = {t: s.put_artifact_type(pb.ArtifactType(name=t)) for t in (
            "Examples", "Schema", "ExampleStatistics", "ExampleAnomalies", "Model", "ModelRun",
            "ModelBlessing", "ModelEvaluation", "PushedModel")}
        self.ctx_types = {t: s.put_context_type(pb.ContextType(name=t))
                          for t in ("pipeline", "pipeline_run", "node", "execution_cache")}
        self.pipeline = self._context("pipeline", name)
        self.latest: dict[str, dict[str, pb.Artifact]] = {}  # node -> its outputs, newest
        self.by_span: dict[int, dict[str, dict]] = {}  # span -> data node -> its outputs
        self.versions = 0
        self.trained = 0
        self.record_metrics = True  # the evaluation's metrics on each run's request

    def _context(self, kind: str, name: str) -> pb.Context:
        found = self.store.get_context_by_type_and_name(kind, name)
        if found is not None:
            return found
        [cid] = self.store.put_contexts([pb.Context(type_id=self.ctx_types[kind], name=name)])
        return self.store.get_contexts_by_id([cid])[0]

    def run(self, run_id: str, *, span: int, train: bool = True, blessed: bool = True,
            fail_at: str | None = None, reason: str = "") -> SimpleNamespace:
        """One run on `span`: the data nodes run when the span is new, else are found cached;
        the training nodes run when `train` (else cached: the previous run's outputs). A
        blessed trained model is pushed as the next version. `fail_at`: that node fails and
        the run stops there. Returns node -> execution id and the outputs by node."""
        s = self.store
        run = self._context("pipeline_run", run_id)
        s.put_parent_contexts([pb.ParentContext(child_id=run.id, parent_id=self.pipeline.id)])
        provenance = RunProvenance(
            git_commit="a" * 40, git_dirty=False, config_sha256="c" * 64,
            config={"pipeline_name": self.name}, span=span, data_root=self.data_root,
            data_files=span_files(self.data_root, span))
        request_id = record_run_request(s, self.name, run_id, RunRequest(
            trigger="run", reason=reason, user="ada", host="lab", provenance=provenance))
        executions, outputs = {}, {}
        for node, (type_name, inputs, outs) in NODES.items():
            if node == "ImportSchemaGen":
                runs_now = node not in self.latest
            elif node in DATA_NODES:
                runs_now = node not in self.by_span.get(span, {})
            else:
                runs_now = train or node not in self.latest
            state = pb.Execution.COMPLETE if runs_now else pb.Execution.CACHED
            if node == fail_at:
                state = pb.Execution.FAILED
            execution = pb.Execution(
                type_id=s.put_execution_type(pb.ExecutionType(name=type_name)),
                last_known_state=state)
            if node == "Trainer":
                execution.custom_properties["train_args"].string_value = (
                    '{"num_steps": 300, "splits": ["train"]}')
                execution.custom_properties["custom_config"].string_value = (
                    '{"trainer": {"batch_size": 32, "distribution": {"workers": 2, '
                    '"communication": "ring"}}, "model": {"hidden_units": [16, 8]}}')
            pairs = [(self._input(outputs, producer, key), _event(pb.Event.INPUT, k))
                     for k, producer, key in inputs]
            made: dict[str, pb.Artifact] = {}
            if state == pb.Execution.COMPLETE:
                made = {key: self._new(node, key, kind, span, blessed) for key, kind in outs}
            elif state == pb.Execution.CACHED:
                made = self.by_span[span][node] if node in DATA_NODES else self.latest[node]
            pairs += [(a, _event(pb.Event.OUTPUT, k)) for k, a in made.items()]
            contexts = [self.pipeline, run, self._context("node", f"{self.name}.{node}")]
            if state == pb.Execution.COMPLETE:
                contexts.append(self._context("execution_cache", f"{run_id}.{node}"))
            eid, ids, _ = s.put_execution(execution, pairs, contexts,
                                          reuse_context_if_already_exist=True)
            for (a, _), aid in zip(pairs, ids, strict=True):
                a.id = aid
            executions[node] = eid
            outputs[node] = made
            if state == pb.Execution.COMPLETE:
                self.latest[node] = made
                if node in DATA_NODES:
                    self.by_span.setdefault(span, {})[node] = made
            if node == fail_at:
                break
        link_run_request(s, request_id, run_id)
        evaluation = outputs.get("Evaluator", {}).get("evaluation")
        if evaluation is not None and self.record_metrics:  # as `pipeline run` does after
            record_run_metrics(s, run_id, evaluation.id, {"accuracy": 0.95})
        return SimpleNamespace(run_id=run_id, executions=executions, outputs=outputs,
                               request=request_id)

    def _input(self, outputs, producer: str, key: str) -> pb.Artifact:
        return outputs[producer][key]

    def _new(self, node: str, key: str, kind: str, span: int, blessed: bool) -> pb.Artifact:
        a = pb.Artifact(type_id=self.types[kind], uri=f"/root/{node}/{key}/{self.trained}",
                        state=pb.Artifact.LIVE)
        props = a.custom_properties
        if kind == "Examples":
            props["span"].int_value = span
        if node == "Trainer" and key == "model":
            self.trained += 1
        if node == "StableBaseline":
            props["baseline_kind"].string_value = "none"
            props["baseline_reason"].string_value = "none (first release)"
        if node == "Evaluator" and key == "blessing":
            props["blessed"].int_value = int(blessed)
        if node == "SignatureValidator":
            props["blessed"].int_value = props["signature_blessed"].int_value = 1
            props["reasons"].string_value = "[]"
        if kind == "PushedModel":
            if blessed:
                self.versions += 1
                v = self.versions
                props["pushed"].int_value = 1
                props["pushed_version"].int_value = v
                props["pushed_destination"].string_value = os.path.join(self.base, str(v))
                props["tag"].string_value = f"canary-v{v}-20261201"
                props["reused_existing_version"].int_value = 0
                props["pushed_at"].string_value = "2026-12-01T00:00:00+00:00"
                props["metrics"].string_value = '{"accuracy": 0.95}'
            else:
                props["pushed"].int_value = 0
                props["not_pushed_reason"].string_value = "the Evaluator did not bless the model"
        return a

    def release(self, operation: str, version: int, reason: str = "canary looks good") -> int:
        record = OperationRecord(
            operation=operation, model_name="penguin", base_path=self.base,
            tag=f"canary-v{version}-20261201", version=version, actor="grace", reason=reason,
            timestamp="2026-12-02T00:00:00+00:00", linked_versions=(version,))
        return record_operation(self.path, record, self.name).execution_id


def _event(kind, key: str) -> pb.Event:
    event = pb.Event(type=kind)
    event.path.steps.add().key = key
    event.path.steps.add().index = 0
    return event
