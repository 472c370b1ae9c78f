"""The baseline strategy: the stable version's model, found through ML Metadata lineage, with a
real in-memory MLMD store and a real labels.json."""

from __future__ import annotations

import json

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb
from tfx.types import standard_artifacts

from components.evaluator.baseline import BaselineBeforeCandidateStrategy

INPUT, OUTPUT = pb.Event.INPUT, pb.Event.OUTPUT


class Lineage:
    """A tiny pipeline history: trained models, Evaluator blessings, pusher executions."""

    def __init__(self, base_path: str):
        config = pb.ConnectionConfig()
        config.fake_database.SetInParent()
        self.store = metadata_store.MetadataStore(config)
        self.base = base_path
        self.types = {n: self.store.put_artifact_type(pb.ArtifactType(name=n))
                      for n in ("Model", "ModelBlessing", "PushedModel")}
        self.pusher_type = self.store.put_execution_type(pb.ExecutionType(name="ServingPusher"))
        self.models, self.blessings = [], []

    def artifact(self, type_name: str, **props):
        a = pb.Artifact(type_id=self.types[type_name], uri=f"/x/{type_name}")
        for k, v in props.items():
            if isinstance(v, int):
                a.custom_properties[k].int_value = v
            else:
                a.custom_properties[k].string_value = v
        [a.id] = self.store.put_artifacts([a])
        return a

    def train(self, blessed: bool = True):
        m = self.artifact("Model")
        model = standard_artifacts.Model()
        model.set_mlmd_artifact(m)
        self.models.append(model)
        b = standard_artifacts.ModelBlessing()
        b.set_mlmd_artifact(self.artifact("ModelBlessing", blessed=int(blessed),
                                          current_model_id=m.id))
        self.blessings.append(b)
        return model

    def push(self, model, version: int):
        pushed = self.artifact("PushedModel", pushed=1, pushed_version=version,
                               pushed_destination=f"{self.base}/{version}")

        [execution_id] = self.store.put_executions(
            [pb.Execution(type_id=self.pusher_type, last_known_state=pb.Execution.COMPLETE)])

        def event(artifact_id, kind, key):
            e = pb.Event(artifact_id=artifact_id, execution_id=execution_id, type=kind)
            e.path.steps.add().key = key
            e.path.steps.add().index = 0
            return e

        self.store.put_events([event(model.id, INPUT, "model"),
                               event(pushed.id, OUTPUT, "pushed_model")])

    def resolve(self, candidate):
        strategy = BaselineBeforeCandidateStrategy(base_path=self.base)
        out = strategy.resolve_artifacts(self.store, {
            "candidate": [candidate], "model": list(self.models),
            "model_blessing": list(self.blessings),
        })
        assert out["candidate"] == [candidate]
        return out["model"][0].id if out["model"] else None


def labels(base, stable=None, history=()):
    base.mkdir(parents=True, exist_ok=True)
    data = {"model_name": "m", "labels": {"stable": stable} if stable else {},
            "stable_history": list(history)}
    (base / "labels.json").write_text(json.dumps(data))


@pytest.fixture
def base(tmp_path):
    return tmp_path / "serving"


def test_without_a_stable_label_the_latest_older_blessed_model(base):
    lin = Lineage(str(base))
    m1, m2, _m3 = lin.train(), lin.train(), lin.train(blessed=False)
    cand = lin.train()
    assert lin.resolve(cand) == m2.id
    labels(base)  # a base path with no stable yet
    assert lin.resolve(cand) == m2.id
    assert m1.id < m2.id


def test_stable_label_picks_the_model_released_as_that_version(base):
    lin = Lineage(str(base))
    m1, m2 = lin.train(), lin.train()
    lin.push(m1, 1)
    lin.push(m2, 2)
    labels(base, stable=1, history=[1])
    cand = lin.train()
    # Not the latest blessed (m2, the canary): the stable one.
    assert lin.resolve(cand) == m1.id


def test_promoted_candidate_falls_back_to_the_previous_stable(base):
    lin = Lineage(str(base))
    m1, m2 = lin.train(), lin.train()
    lin.push(m1, 1)
    lin.push(m2, 2)
    # m2 was the candidate of a run whose baseline was stable 1; it is promoted since. The
    # same run again must keep the same baseline, so that it stays cached.
    labels(base, stable=2, history=[1, 2])
    assert lin.resolve(m2) == m1.id


def test_stable_pushed_outside_this_store_falls_back(base):
    lin = Lineage(str(base))
    m1 = lin.train()
    labels(base, stable=7, history=[7])
    assert lin.resolve(lin.train()) == m1.id


def test_identical_models_released_as_one_version_resolve_to_the_first(base):
    lin = Lineage(str(base))
    m1, m1_again = lin.train(), lin.train()
    lin.push(m1, 1)
    lin.push(m1_again, 1)  # identical content: the version was reused
    labels(base, stable=1, history=[1])
    assert lin.resolve(lin.train()) == m1.id


def test_destination_in_another_base_path_does_not_count(base, tmp_path):
    lin = Lineage(str(tmp_path / "other"))
    m1, m2 = lin.train(), lin.train()
    lin.push(m1, 1)  # pushed to .../other/1
    lin.base = str(base)
    labels(base, stable=1, history=[1])
    assert lin.resolve(lin.train()) == m2.id  # fallback, not m1
