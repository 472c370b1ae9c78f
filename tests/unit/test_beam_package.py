"""TFX's sdist of itself is skipped for a Beam pipeline that runs here, and only then."""

from __future__ import annotations

import pytest

from runners.beam_package import runner_name, runs_here, skip_tfx_package_for_local_beam


@pytest.mark.parametrize("args, name", [
    ([], ""),
    (["--direct_running_mode=in_memory"], ""),
    (["--runner=FlinkRunner", "--flink_master=h:8081"], "FlinkRunner"),
    (["--runner", "dataflow"], "dataflow"),
    (["--runner=flink", "--runner=DirectRunner"], "DirectRunner"),
])
def test_runner_name_is_read_as_beam_reads_it(args, name):
    assert runner_name(args) == name


@pytest.mark.parametrize("args, here", [
    ([], True),
    (["--direct_running_mode=multi_processing", "--direct_num_workers=2"], True),
    (["--runner=DirectRunner"], True),
    (["--runner=direct"], True),
    (["--runner=BundleBasedDirectRunner"], True),
    (["--runner=FlinkRunner"], False),
    (["--runner=spark"], False),
    (["--runner=DataflowRunner"], False),
    (["--runner=PortableRunner"], False),
])
def test_only_the_direct_runner_runs_here(args, here):
    assert runs_here(args) is here


def test_the_patched_tfx_skips_the_sdist_for_direct_and_builds_it_for_a_cluster(monkeypatch):
    from tfx.utils import dependency_utils

    built = []
    monkeypatch.setattr(dependency_utils, "build_ephemeral_package",
                        lambda: built.append(1) or "/tmp/tfx_ephemeral.tar.gz")
    monkeypatch.setattr(dependency_utils, "make_beam_dependency_flags",
                        dependency_utils.make_beam_dependency_flags)
    direct = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    flink = ["--runner=FlinkRunner", "--flink_master=h:8081"]
    # Unpatched, TFX builds it for the DirectRunner too: what the patch exists for.
    assert dependency_utils.make_beam_dependency_flags(direct)[-1].startswith("--extra_package=")
    assert built == [1]
    skip_tfx_package_for_local_beam()
    skip_tfx_package_for_local_beam()  # idempotent: one wrapper, not two
    assert dependency_utils.make_beam_dependency_flags(direct) == direct
    assert built == [1]
    assert dependency_utils.make_beam_dependency_flags(flink) == [
        *flink, "--extra_package=/tmp/tfx_ephemeral.tar.gz"]
    assert built == [1, 1]
    # A cluster given the code already (an SDK container image): TFX adds nothing.
    image = [*flink, "--sdk_container_image=reg/tfx-pipeline:1"]
    assert dependency_utils.make_beam_dependency_flags(image) == image
