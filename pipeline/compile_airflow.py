"""``pipeline compile airflow``: an Airflow DAG file that runs the pipeline, one task per node.

The file holds plain data (the configuration with absolute paths, the node graph, schedule and
retries from the profile's ``airflow`` section) and one call, ``runners.airflow.airflow_dag``:
Airflow parses it without importing TensorFlow. See runners/airflow.py for what each task does
and docs/OPERATIONS.md ("Airflow") for deploying and triggering it.

Importing this module is cheap (argparse): the CLI registers the command from it; compiling
builds the pipeline once (TFX) to read its node graph.
Exit codes: 0 written, 1 cannot write, 2 refused (bad configuration).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def add_airflow_parser(targets: Any) -> argparse.ArgumentParser:
    """Adds `airflow` to the `compile` command's targets (from `add_subparsers`)."""
    airflow = targets.add_parser("airflow", help="an Airflow DAG file, one task per node")
    airflow.add_argument("--profile", default="local", help="profile in pipeline/profiles (local)")
    airflow.add_argument("--config", metavar="FILE", help="YAML file merged over the profile")
    airflow.add_argument("--dag-id", help="the DAG's id (default: airflow.dag_id, else the "
                         "pipeline name)")
    airflow.add_argument("--output", metavar="FILE",
                         help="write the DAG file here (default: dags/<dag_id>.py)")
    return airflow


def run_compile_airflow(args: argparse.Namespace) -> int:
    from pipeline.config import ConfigError, load_config
    from runners.airflow import ConfError, dag_spec, render_dag_file  # TFX only when compiling

    try:
        cfg = load_config(args.profile, args.config)
        spec = dag_spec(cfg, args.profile, args.dag_id)
    except (ConfigError, ConfError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    output = args.output or os.path.join("dags", f"{spec['dag_id'].replace('.', '_')}.py")
    text = render_dag_file(spec, cfg.sources)
    from components.serving.files import write_atomically

    try:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        # Airflow never parses half a file (nor the temporary: its name does not end in .py).
        write_atomically(os.path.abspath(output), text.encode())
    except OSError as e:
        print(f"error: {output}: cannot write: {e.strerror}", file=sys.stderr)
        return 1
    schedule = spec["schedule"] or "none (triggered runs only)"
    print(f"wrote {output}: DAG {spec['dag_id']}, {len(spec['nodes'])} tasks, schedule "
          f"{schedule}, {spec['retries']} retries", file=sys.stderr)
    return 0
