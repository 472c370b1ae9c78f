"""The baseline: the version labelled `stable`, the previous stable when the candidate is it,
none before the first promote; chosen from a real base path (real releases, promotes and
rollbacks of fake SavedModel directories) and written as the files the Evaluator reads."""

from __future__ import annotations

import json
import os

import pytest

from components.baseline import (
    BaselineError,
    chain_from_json,
    chain_to_json,
    choose_baseline,
    stable_chain,
    write_baseline,
)
from components.serving import (
    ReleaseRequest,
    model_content_hash,
    promote,
    prune,
    release_version,
    rollback,
)
from tests.unit.test_release import make_model  # the same fake SavedModels


class Base:
    """A serving base path and the models released into it."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.path = str(tmp_path / "serving" / "penguin")
        self.models: dict[int, str] = {}  # version -> the model directory released as it

    def release(self, seed: int) -> int:
        model = make_model(self.tmp / "models", f"m{seed}", seed)
        release = release_version(self.path, ReleaseRequest(
            model_dir=model, model_name="penguin", mlmd_ids={"model": 100 + seed}))
        self.models[release.version] = model
        return release.version

    def choose(self, candidate: str):
        return choose_baseline(stable_chain(self.path), model_content_hash(candidate))


@pytest.fixture
def base(tmp_path):
    return Base(tmp_path)


def test_first_release_has_no_baseline(base, tmp_path):
    candidate = make_model(tmp_path, "candidate", 1)
    choice = base.choose(candidate)  # no base path at all
    assert (choice.kind, choice.entry) == ("none", None)
    assert choice.reason == "none (first release: no version is labelled stable)"
    base.release(1)  # released as canary, never promoted: still no stable
    assert base.choose(make_model(tmp_path, "next", 2)).kind == "none"


def test_the_stable_version_not_the_newer_canary(base, tmp_path):
    v1 = base.release(1)
    promote(base.path, "canary")
    base.release(2)  # the canary
    choice = base.choose(make_model(tmp_path, "candidate", 3))
    assert (choice.kind, choice.entry.version) == ("stable", v1)
    assert choice.entry.model_id == 101  # the Model released as it, from its record
    assert choice.reason == f"stable version 1 ({choice.entry.tag})"
    assert choice.entry.tag.startswith("canary-v1-")


def test_a_candidate_that_is_the_stable_version_gets_the_previous_stable(base):
    v1 = base.release(1)
    promote(base.path, "canary")
    v2 = base.release(2)
    promote(base.path, "canary")  # stable 2, history [1, 2]
    choice = base.choose(base.models[v2])  # the same content: the promoted candidate re-runs
    assert (choice.kind, choice.entry.version) == ("previous_stable", v1)
    assert "the candidate being stable version 2" in choice.reason
    # Another candidate is compared with the stable version.
    assert base.choose(base.models[v1]).entry.version == v2


def test_the_only_stable_as_candidate_has_no_baseline(base):
    v1 = base.release(1)
    promote(base.path, "canary")
    choice = base.choose(base.models[v1])
    assert (choice.kind, choice.entry) == ("none", None)
    assert choice.reason == "none (the candidate is stable version 1 and no earlier stable is " \
                            "served)"


def test_rollback_moves_the_baseline_back(base, tmp_path):
    v1 = base.release(1)
    promote(base.path, "canary")
    base.release(2)
    promote(base.path, "canary")
    rollback(base.path)
    assert base.choose(make_model(tmp_path, "candidate", 3)).entry.version == v1


def test_a_pruned_previous_stable_is_not_a_baseline(base):
    base.release(1)
    promote(base.path, "canary")
    base.release(2)
    promote(base.path, "canary")
    v3 = base.release(3)
    promote(base.path, "canary")  # stable 3, history [1, 2, 3]; 2 is kept for rollback
    prune(base.path, keep=1)
    assert [e.version for e in stable_chain(base.path)] == [3, 2]
    assert not os.path.exists(os.path.join(base.path, "1"))
    assert base.choose(base.models[v3]).entry.version == 2


def test_the_cache_key_follows_the_stable_chain_not_canary_releases(base):
    keys = [chain_to_json(stable_chain(base.path))]
    base.release(1)  # a canary: what the next candidate is compared with is unchanged
    keys.append(chain_to_json(stable_chain(base.path)))
    assert keys[-1] == keys[0] == "[]"
    promote(base.path, "canary")
    keys.append(chain_to_json(stable_chain(base.path)))
    base.release(2)
    keys.append(chain_to_json(stable_chain(base.path)))
    promote(base.path, "canary")
    keys.append(chain_to_json(stable_chain(base.path)))
    rollback(base.path)
    keys.append(chain_to_json(stable_chain(base.path)))
    assert keys[2] == keys[3] and len({keys[0], keys[2], keys[4]}) == 3
    # Back to stable 1 alone: the key of the runs compared with it, whose cache is right again.
    assert keys[5] == keys[2]
    assert [e.version for e in chain_from_json(keys[4])] == [2, 1]


def test_a_version_pushed_without_a_record_is_hashed(base, tmp_path):
    v1 = base.release(1)
    promote(base.path, "canary")
    os.remove(os.path.join(base.path, ".releases", f"{v1}.json"))
    os.remove(os.path.join(base.path, ".versions", f"{v1}.json"))
    [entry] = stable_chain(base.path)
    assert (entry.version, entry.tag, entry.model_id) == (v1, "", -1)
    assert entry.content_hash == model_content_hash(base.models[v1])


def test_malformed_labels_are_one_line_naming_the_file(base):
    from pipeline.build import stable_chain_key
    from pipeline.config import ConfigError

    os.makedirs(base.path)
    with open(os.path.join(base.path, "labels.json"), "w") as f:
        json.dump({"labels": {"stable": "two"}}, f)
    with pytest.raises(ConfigError, match=r"^pusher\.base_path: .*labels\.json: labels: "):
        stable_chain_key(base.path)
    assert stable_chain_key("gs://bucket/serving/penguin") == ""  # read by the node instead


def _files(root: str) -> dict[str, bytes]:
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            out[os.path.relpath(os.path.join(d, n), root)] = open(os.path.join(d, n), "rb").read()
    return out


def test_the_stable_version_is_written_where_the_evaluator_reads_it(base, tmp_path):
    v1 = base.release(1)
    promote(base.path, "canary")
    candidate = make_model(tmp_path, "candidate", 2)
    uri = str(tmp_path / "artifact")
    choice = write_baseline(candidate, base.path, stable_chain(base.path), uri)
    assert choice.entry.version == v1
    served = os.path.join(base.path, str(v1))
    assert _files(os.path.join(uri, "Format-Serving")) == _files(served)
    # Hard links: no copy of a large model per run.
    assert os.path.samefile(os.path.join(uri, "Format-Serving", "saved_model.pb"),
                            os.path.join(served, "saved_model.pb"))


def test_on_a_first_release_the_candidate_is_its_own_baseline(base, tmp_path):
    candidate = make_model(tmp_path, "candidate", 2)
    uri = str(tmp_path / "artifact")
    assert write_baseline(candidate, base.path, [], uri).kind == "none"
    assert _files(os.path.join(uri, "Format-Serving")) == _files(candidate)


def test_the_chain_the_build_read_is_what_is_written(base, tmp_path):
    """A promote between the build and the node does not change what the node writes: its
    output must be what its cache key names."""
    v1 = base.release(1)
    promote(base.path, "canary")
    built = stable_chain(base.path)
    base.release(2)
    promote(base.path, "canary")
    choice = write_baseline(make_model(tmp_path, "c", 3), base.path, built,
                            str(tmp_path / "artifact"))
    assert choice.entry.version == v1


def test_a_served_version_edited_by_hand_is_refused_naming_it(base, tmp_path):
    v1 = base.release(1)
    promote(base.path, "canary")
    chain = stable_chain(base.path)
    path = os.path.join(base.path, str(v1))
    os.chmod(os.path.join(path, "saved_model.pb"), 0o644)
    with open(os.path.join(path, "saved_model.pb"), "ab") as f:
        f.write(b"x")
    with pytest.raises(BaselineError, match=rf"^{path}: content sha256 \w+ is not the released"):
        write_baseline(make_model(tmp_path, "c", 3), base.path, chain, str(tmp_path / "a"))


def test_a_volume_not_mounted_is_refused_not_read_as_a_first_release(tmp_path):
    from components.baseline.choice import check_mounted
    from components.serving import ReleaseError

    mounted = tmp_path / "serving"
    mounted.mkdir()
    check_mounted(str(mounted / "penguin"))  # the first release: the base path comes later
    missing = tmp_path / "mnt" / "serving" / "penguin"
    with pytest.raises(ReleaseError, match=r"mnt/serving does not exist.*volume mounted"):
        check_mounted(str(missing))
    assert stable_chain(str(missing)) == []  # what the node would have read without the check
