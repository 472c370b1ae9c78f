"""TF_CONFIG checking, loopback cluster making and the communication choice (no TensorFlow)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from components.trainer import strategy
from components.trainer.cluster import (
    ClusterConfigError,
    ClusterTask,
    free_loopback_ports,
    local_tf_configs,
    parse_tf_config,
)
from components.trainer.strategy import CommunicationError, gpus_visible, resolve_communication

REPO = Path(__file__).resolve().parents[2]


def tf_config(workers=("10.0.0.1:2222", "10.0.0.2:2222", "10.0.0.3:2222"), index=1, **extra):
    cluster = {"worker": list(workers), **extra}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


# --- parse_tf_config: accepted -------------------------------------------------------------


def test_valid_config_gives_the_task_and_its_peers():
    task = parse_tf_config(tf_config(index=1))
    assert task == ClusterTask(("10.0.0.1:2222", "10.0.0.2:2222", "10.0.0.3:2222"), 1)
    assert task.num_workers == 3
    assert not task.is_chief
    assert task.peers() == ["10.0.0.1:2222", "10.0.0.3:2222"]


def test_worker_zero_is_the_chief():
    task = parse_tf_config(tf_config(index=0))
    assert task.is_chief
    assert task.peers() == ["10.0.0.2:2222", "10.0.0.3:2222"]


def test_single_worker_cluster_has_no_peers():
    task = parse_tf_config(tf_config(workers=["localhost:2222"], index=0))
    assert (task.num_workers, task.is_chief, task.peers()) == (1, True, [])


def test_hostnames_as_kubernetes_gives_them_are_accepted():
    # What the TFJob operator writes: service names of the worker pods.
    workers = ["penguin-trainer-worker-0.ns.svc:2222", "penguin-trainer-worker-1.ns.svc:2222"]
    task = parse_tf_config(tf_config(workers=workers, index=1))
    assert task.peers() == workers[:1]


def test_an_empty_chief_list_is_not_a_separate_chief():
    assert parse_tf_config(tf_config(index=0, chief=[])).is_chief


# --- parse_tf_config: refused, each with a message naming the problem ----------------------


def refused(text: str) -> str:
    with pytest.raises(ClusterConfigError) as info:
        parse_tf_config(text)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("TF_CONFIG")
    return message


def test_malformed_json_is_refused():
    assert "not valid JSON" in refused('{"cluster": {"worker": ["a:1"]}, "task": ')


def test_empty_value_is_refused():
    assert "not valid JSON" in refused("")


@pytest.mark.parametrize("text", ["[]", '"worker"', "3", "null"])
def test_a_value_that_is_not_an_object_is_refused(text):
    assert "JSON object" in refused(text)


@pytest.mark.parametrize(
    "cluster",
    [None, {}, {"worker": "127.0.0.1:2222"}, {"worker": None}, "127.0.0.1:2222"],
    ids=["no-cluster", "no-worker", "worker-string", "worker-null", "cluster-string"],
)
def test_missing_cluster_worker_list_is_refused(cluster):
    data = {"task": {"type": "worker", "index": 0}}
    if cluster is not None:
        data["cluster"] = cluster
    assert "'cluster.worker'" in refused(json.dumps(data))


def test_empty_worker_list_is_refused():
    assert "'cluster.worker' is empty" in refused(tf_config(workers=[], index=0))


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "127.0.0.1:", ":2222", "host:port", "host:0", "host:65536", "h:-1",
                "12345"]
)
def test_bad_worker_address_is_refused(address):
    message = refused(tf_config(workers=["127.0.0.1:2222", address], index=0))
    assert repr(address) in message
    assert "host:port" in message


@pytest.mark.parametrize("task", [None, {}, {"type": "ps", "index": 0},
                                  {"type": "chief", "index": 0}, {"index": 0}, "worker"])
def test_task_that_is_not_a_worker_is_refused(task):
    data = {"cluster": {"worker": ["a:1", "b:2"]}}
    if task is not None:
        data["task"] = task
    message = refused(json.dumps(data))
    assert "'task'" in message and '"type": "worker"' in message


@pytest.mark.parametrize("index", ["0", 1.0, None, [0]])
def test_index_that_is_not_an_integer_is_refused(index):
    message = refused(tf_config(index=index))
    assert "task index" in message and "not an integer" in message
    assert repr(index) in message


@pytest.mark.parametrize("index", [True, False])
def test_boolean_index_is_refused(index):
    # json: true is a Python bool, and bool is an int subclass; it must not pass as worker 1.
    message = refused(tf_config(index=index))
    assert f"task index {index!r} is not an integer" in message


@pytest.mark.parametrize("index", [3, 17, -1])
def test_index_out_of_range_is_refused(index):
    message = refused(tf_config(index=index))
    assert f"task index {index} out of range for 3 worker(s)" in message


def test_missing_index_is_refused():
    data = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker"}}
    assert "task index None is not an integer" in refused(json.dumps(data))


def test_parameter_server_job_is_refused():
    message = refused(tf_config(index=0, ps=["10.0.0.9:2222"]))
    assert "['ps']" in message
    assert "not supported by MultiWorkerMirroredStrategy" in message


def test_evaluator_job_is_refused():
    assert "['evaluator']" in refused(tf_config(index=0, evaluator=["10.0.0.9:2222"]))


def test_separate_chief_job_is_refused():
    message = refused(tf_config(index=0, chief=["10.0.0.9:2222"]))
    assert "separate 'chief' job is not supported" in message
    assert "worker 0 acts as chief" in message


# --- loopback clusters ----------------------------------------------------------------------


def test_free_loopback_ports_are_distinct_and_bindable():
    ports = free_loopback_ports(4)
    assert len(ports) == 4 and len(set(ports)) == 4
    socks = []
    try:
        for port in ports:
            assert 0 < port < 65536
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", port))  # raises OSError if the port was not free
    finally:
        for s in socks:
            s.close()


def test_free_loopback_ports_of_zero_is_empty():
    assert free_loopback_ports(0) == []


def test_local_tf_configs_round_trip_with_worker_zero_chief():
    ports = free_loopback_ports(3)
    configs = local_tf_configs(ports)
    assert len(configs) == 3
    tasks = [parse_tf_config(c) for c in configs]
    expected = tuple(f"127.0.0.1:{p}" for p in ports)
    for i, task in enumerate(tasks):
        assert task.workers == expected
        assert task.index == i
        assert task.is_chief == (i == 0)
        assert task.peers() == [w for j, w in enumerate(expected) if j != i]
    assert [t.is_chief for t in tasks].count(True) == 1


# --- communication ------------------------------------------------------------------------


def test_auto_is_ring_without_gpu():
    assert resolve_communication("auto", 0) == "ring"


def test_auto_is_nccl_with_gpu():
    assert resolve_communication("auto", 1) == "nccl"
    assert resolve_communication("auto", 8) == "nccl"


def test_explicit_choices_are_kept():
    assert resolve_communication("ring", 0) == "ring"
    assert resolve_communication("ring", 2) == "ring"
    assert resolve_communication("nccl", 2) == "nccl"


def test_nccl_without_gpu_is_an_error_naming_the_key():
    # The pipeline's preflight puts the configuration file in front of this message.
    with pytest.raises(CommunicationError) as info:
        resolve_communication("nccl", 0)
    assert str(info.value) == (
        "trainer.distribution.communication: nccl needs a GPU, none is visible (use ring or auto)"
    )
    assert isinstance(info.value, ValueError)


@pytest.fixture
def nvidia_gpus(tmp_path, monkeypatch):
    """A driver directory listing `n` GPUs, as /proc/driver/nvidia/gpus does."""

    def make(n: int) -> None:
        gpus = tmp_path / "gpus"
        gpus.mkdir()
        for i in range(n):
            (gpus / f"0000:0{i}:00.0").mkdir()
        monkeypatch.setattr(strategy, "NVIDIA_GPUS_DIR", str(gpus))

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return make


def test_gpus_visible_counts_the_driver_entries(nvidia_gpus):
    nvidia_gpus(2)
    assert gpus_visible() == 2


def test_gpus_visible_is_bounded_by_cuda_visible_devices(nvidia_gpus, monkeypatch):
    nvidia_gpus(4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    assert gpus_visible() == 2
    for hidden in ("", "-1", " "):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert gpus_visible() == 0


def test_no_driver_means_no_gpu(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(strategy, "NVIDIA_GPUS_DIR", str(tmp_path / "absent"))
    assert gpus_visible() == 0
    assert resolve_communication("auto", gpus_visible()) == "ring"


def test_nccl_is_a_valid_config_choice():
    from pipeline.config import load_config

    cfg = load_config(overrides={"trainer": {"distribution": {"communication": "nccl"}}})
    assert cfg.trainer.distribution.communication == "nccl"


def test_checks_run_without_importing_tensorflow():
    # A bad TF_CONFIG must be refused before TensorFlow starts (seconds of import).
    code = (
        "import sys\n"
        "from components.trainer.cluster import local_tf_configs, parse_tf_config\n"
        "from components.trainer.strategy import gpus_visible, resolve_communication\n"
        "parse_tf_config(local_tf_configs([2222, 2223])[1])\n"
        "resolve_communication('auto', gpus_visible())\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
