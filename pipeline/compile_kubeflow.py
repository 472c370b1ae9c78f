"""``pipeline compile kubeflow``: a Kubeflow Pipelines v2 package (PipelineSpec YAML) of the
pipeline, compiled by TFX's KubeflowV2DagRunner from the same ``build_pipeline(cfg)``.

Paths, image and runtime-parameter defaults come from the profile (``--profile kubeflow``);
see runners/kubeflow.py for what goes into the package, and docs/OPERATIONS.md ("Kubeflow
Pipelines") for uploading it.

Importing this module is cheap (argparse): the CLI registers the command from it; compiling
builds the pipeline (TFX, TensorFlow: about 20 s).
Exit codes: 0 written, 1 cannot write, 2 refused (bad configuration, path or output name).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_kubeflow_parser(targets: Any) -> argparse.ArgumentParser:
    """Adds `kubeflow` to the `compile` command's targets (from `add_subparsers`)."""
    kubeflow = targets.add_parser(
        "kubeflow", help="a Kubeflow Pipelines v2 package (YAML) that kfp.Client uploads")
    kubeflow.add_argument("--profile", default="kubeflow",
                          help="profile in pipeline/profiles (kubeflow)")
    kubeflow.add_argument("--config", metavar="FILE", help="YAML file merged over the profile")
    kubeflow.add_argument("--output", metavar="FILE.yaml",
                          help="write the package here (default: kubeflow/<pipeline_name>.yaml)")
    kubeflow.add_argument("--json", action="store_true",
                          help="print what the package holds as one JSON object")
    return kubeflow


def run_compile_kubeflow(args: argparse.Namespace) -> int:
    from pipeline.config import ConfigError, load_config
    from runners.kubeflow import check_output_path, compile_package, default_output

    output = args.output
    try:
        if output is not None:
            check_output_path(output)  # before the 20 s of building
        cfg = load_config(args.profile, args.config)
        output = output or default_output(cfg)
        summary = compile_package(cfg, output)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {output}: cannot write: {e.strerror or e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, sort_keys=True))
        return 0
    print(f"wrote {summary['path']}: pipeline {summary['pipeline_name']}, "
          f"{len(summary['nodes'])} tasks, image {summary['image']}, runtime parameters "
          f"{', '.join(sorted(summary['parameters']))}", file=sys.stderr)
    return 0
