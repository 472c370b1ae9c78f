"""`pipeline lineage` and `pipeline runs list|show`: questions to ML Metadata, answered without
TensorFlow.

    pipeline lineage stable                   what made the version serving as stable, who
                                              promoted it (a label, tag, version, run id, or
                                              artifact:ID)
    pipeline lineage --data 2                 every model and served version made from span 2
    pipeline lineage --data span-2/Split-train/data.tfrecord.gz   ... from that file
    pipeline runs list [--limit N]            the newest runs
    pipeline runs show RUN_ID                 one run: components, states, times, metrics, push

Importing this module is cheap (argparse only). Exit codes: 0 answered, 1 the store or
Graphviz failed, 2 refused (unknown tag, version, run or artifact; bad flags or config; no
store yet).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

FORMATS = ("text", "json", "dot")
# `--output` file name endings and the format each writes.
OUTPUT_FORMATS = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot", ".json": "json",
                  ".txt": "text"}
_PREFIXED = re.compile(r"^(artifact|run|tag|version):(.+)$")


class Refused(Exception):
    """A question that cannot be answered as asked (exit 2)."""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="local", help="profile in pipeline/profiles (local)")
    p.add_argument("--config", metavar="FILE", help="YAML file merged over the profile")


def add_lineage_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds `lineage` to `subparsers`; argparse only."""
    p = subparsers.add_parser(
        "lineage", help="what data, code and run made a version, and who released it",
        description="The chain data files -> Examples -> statistics, schema, anomalies -> "
        "Model -> evaluation, blessing -> signature verdict -> PushedModel -> release "
        "operations, each with its execution and time, from ML Metadata. TARGET: a label "
        "(stable, canary), a tag, a version number, a run id, or artifact:ID (also tag:, "
        "version:, run: to be explicit). With --data: every model and served version made "
        "from a span or a file.")
    p.add_argument("target", nargs="?", metavar="TARGET",
                   help="stable | canary | TAG | VERSION | RUN_ID | artifact:ID")
    p.add_argument("--data", metavar="FILE_OR_SPAN",
                   help="the reverse question: models and served versions derived from this "
                   "span (a number) or input file (a path, or its name under the data root)")
    p.add_argument("--format", choices=FORMATS, default="text", help="output (text)")
    p.add_argument("--output", metavar="FILE",
                   help="write to FILE instead: .svg or .png (an image, by Graphviz), .dot, "
                   ".json or .txt")
    p.add_argument("--base-path", metavar="DIR",
                   help="model base path for labels and versions (default: pusher.base_path)")
    _common(p)
    return p


def add_runs_actions(actions: Any) -> None:
    """Adds `list` and `show` to the `runs` command's subparsers; argparse only."""
    ls = actions.add_parser("list", help="the newest runs: status, span, cached, pushed, who")
    ls.add_argument("--limit", type=int, default=20, metavar="N", help="how many (20)")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    _common(ls)
    show = actions.add_parser(
        "show", help="one run: components, states, times, cached, metrics, pushed")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    _common(show)


def _error(message: str, code: int) -> int:
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    return code


def _open_store(args: argparse.Namespace):
    """(config, store) for `args`, the store opened read-only when it is a SQLite file.

    Raises:
      ConfigError: a bad profile or overlay (exit 2).
      Refused: no store yet (exit 2).
      MetadataError: the store cannot be opened (exit 1).
    """
    from components.metadata import connection_config, open_store
    from components.metadata.store import store_exists
    from pipeline.config import load_config

    cfg = load_config(args.profile, args.config, check_schema=False)
    target = cfg.metadata_target
    if not store_exists(target):
        raise Refused(f"no ML Metadata store at {cfg.metadata_uri}: no run of pipeline "
                      f"{cfg.pipeline_name} recorded there yet")
    if not isinstance(target, (str, os.PathLike)):  # a server: open_store checks it first
        return cfg, open_store(target)
    from ml_metadata.proto import metadata_store_pb2 as pb

    config = connection_config(target)  # read-only: never waits for, nor blocks, a run
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READONLY
    return cfg, open_store(config)


def _guarded(command):
    """Runs `command(args)` turning the known failures into one line and an exit code."""

    def run(args: argparse.Namespace) -> int:
        from components.metadata import LineageNotFound, MetadataError
        from pipeline.config import ConfigError

        try:
            return command(args)
        except (ConfigError, Refused, LineageNotFound) as e:
            return _error(str(e), 2)
        except MetadataError as e:
            return _error(str(e), 1)

    return run


# --- lineage ----------------------------------------------------------------------------


@_guarded
def run_lineage(args: argparse.Namespace) -> int:
    """`pipeline lineage`; the exit code."""
    from pipeline.lineage_render import RenderError

    if (args.target is None) == (args.data is None):
        raise Refused("give a TARGET (stable, a tag, a version, a run id, artifact:ID) or "
                      "--data SPAN_OR_FILE, not both")
    fmt = args.format
    if args.output:
        ext = os.path.splitext(args.output)[1].lower()
        if ext not in OUTPUT_FORMATS:
            raise Refused(f"--output {args.output}: the name must end in "
                          f"{', '.join(OUTPUT_FORMATS)}")
        fmt = OUTPUT_FORMATS[ext]
        directory = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(directory):
            raise Refused(f"--output {args.output}: {directory} is not a directory")
    if args.data is not None and fmt in ("dot", "svg", "png"):
        raise Refused("--data answers as text or json (a graph is drawn of one chain)")
    cfg, store = _open_store(args)
    base = os.path.abspath(args.base_path or cfg.pusher.base_path)
    if args.data is not None:
        doc = _derived_doc(cfg, store, args.data)
    else:
        doc = _lineage_doc(cfg, store, args.target, base)
    try:
        data = _formatted(doc, fmt, reverse=args.data is not None)
    except RenderError as e:
        return _error(str(e), 1)
    if args.output:
        from components.serving.files import write_atomically

        write_atomically(args.output, data)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(data.decode())
    return 0


def _formatted(doc: dict[str, Any], fmt: str, *, reverse: bool) -> bytes:
    from pipeline import lineage_render as render

    if fmt == "json":
        return (json.dumps(doc, indent=2) + "\n").encode()
    if fmt == "text":
        lines = render.derived_text(doc) if reverse else render.lineage_text(doc)
        return ("\n".join(lines) + "\n").encode()
    dot = render.lineage_dot(doc)
    return dot.encode() if fmt == "dot" else render.render_image(dot, fmt)


def _labels_of(base: str) -> dict[str, int]:
    """The base path's labels now ({} when it has none or cannot be read)."""
    from components.serving import read_state

    try:
        return dict(read_state(base).labels)
    except Exception:  # noqa: BLE001  (a base path elsewhere, or malformed: labels unknown)
        return {}


def _lineage_doc(cfg, store, target: str, base: str) -> dict[str, Any]:
    """The chain `target` names, as the JSON document all formats are made from.

    Raises:
      LineageNotFound, Refused: naming what was not found.
    """
    from components.metadata import (
        LineageNotFound,
        lineage_of_artifact,
        lineage_of_run,
        lineage_of_tag,
        lineage_of_version,
    )
    from components.serving.labels import LABELS

    pipeline = cfg.pipeline_name
    kind, value = "", target
    m = _PREFIXED.match(target)
    if m:
        kind, value = m.group(1), m.group(2)
    elif target in LABELS:
        kind = "label"
    elif target.isdigit():
        kind = "version"
    if kind == "label":
        version = _labels_of(base).get(target)
        if version is None:
            raise Refused(f"no version is labelled {target} in {base}")
        lineage, headline = (lineage_of_version(store, pipeline, base, version),
                             f"lineage of {target}: version {version} of {base}")
    elif kind == "version":
        if not value.isdigit():
            raise Refused(f"version:{value}: expected a version number")
        lineage = lineage_of_version(store, pipeline, base, int(value))
        headline = f"lineage of version {value} of {base}"
    elif kind == "artifact":
        if not value.isdigit():
            raise Refused(f"artifact:{value}: expected an artifact id (a number)")
        lineage = lineage_of_artifact(store, pipeline, int(value))
        headline = f"lineage of artifact {value}"
    elif kind == "run":
        lineage = lineage_of_run(store, pipeline, value)
        headline = f"lineage of run {value}"
    else:  # a tag, else a run id
        try:
            lineage = lineage_of_tag(store, pipeline, value)
            headline = f"lineage of tag {value}"
        except LineageNotFound:
            if kind == "tag":
                raise
            try:
                lineage = lineage_of_run(store, pipeline, value)
            except LineageNotFound:
                raise LineageNotFound(
                    f"{value!r} is no label, tag, version or run id of pipeline {pipeline} in "
                    f"ML Metadata {cfg.metadata_uri}") from None
            headline = f"lineage of run {value}"
    doc = lineage.to_json()
    pushed = [a for a in doc["artifacts"] if a["id"] in doc["pushed"]]
    if pushed:
        p = pushed[0]["properties"]
        labels = sorted(k for k, v in _labels_of(os.path.dirname(
            os.path.normpath(p.get("pushed_destination", "")))).items()
            if v == p.get("pushed_version"))
        headline += (f" (released as version {p.get('pushed_version')}, {p.get('tag')}"
                     f"{'; labelled ' + ', '.join(labels) + ' now' if labels else ''})")
    return {"headline": headline, "query": {"target": target, "kind": kind or "tag or run"},
            "store": cfg.metadata_uri, **doc}


# --- the reverse question ---------------------------------------------------------------


def _derived_doc(cfg, store, data: str) -> dict[str, Any]:
    """Models and served versions derived from span or file `data`, as a JSON document."""
    from components.metadata import derived_from_file, derived_from_span

    pipeline = cfg.pipeline_name
    doc: dict[str, Any] = {"pipeline": pipeline, "store": cfg.metadata_uri}
    if data.isdigit():
        examples, models = derived_from_span(store, pipeline, int(data))
        doc.update(headline=f"derived from span {data}", query={"span": int(data)},
                   files=[], runs=[])
    else:
        files, runs, examples, models = _derived_from_file(cfg, store, data,
                                                           derived_from_file)
        doc.update(headline=f"derived from {data}", query={"file": data},
                   files=[f.to_json() for f in files], runs=runs)
    labels_by_base: dict[str, dict[str, int]] = {}
    served: dict[tuple[str, int], dict[str, Any]] = {}
    out_models = []
    for m in models:
        model = m.to_json()
        for p in model["pushed"]:
            labels = labels_by_base.setdefault(p["base_path"], _labels_of(p["base_path"]))
            p["labels"] = sorted(k for k, v in labels.items() if v == p["version"])
            served.setdefault((p["base_path"], p["version"]), {
                "version": p["version"], "tag": p["tag"], "base_path": p["base_path"],
                "labels": p["labels"]})
        out_models.append(model)
    doc.update(examples=examples, models=out_models,
               served_versions=[served[k] for k in sorted(served)])
    return doc


def _derived_from_file(cfg, store, data: str, derived_from_file):
    """`derived_from_file` for a path on disk (by content, else by path) or a name under the
    data root."""
    from components.metadata import LineageNotFound

    pipeline = cfg.pipeline_name
    if os.path.isfile(data):
        from components.data_check.fingerprint import file_digest

        path = os.path.abspath(data)
        try:
            return derived_from_file(store, pipeline, sha256=file_digest(path))
        except LineageNotFound:  # changed since: the runs that read an earlier content
            return derived_from_file(store, pipeline, path=path)
    if os.path.isabs(data):
        return derived_from_file(store, pipeline, path=os.path.normpath(data))
    try:
        return derived_from_file(store, pipeline, name=os.path.normpath(data))
    except LineageNotFound:
        path = os.path.join(os.path.abspath(cfg.data.root), data)
        return derived_from_file(store, pipeline, path=os.path.normpath(path))


# --- runs -------------------------------------------------------------------------------


@_guarded
def run_runs_query(args: argparse.Namespace) -> int:
    """`pipeline runs list` and `pipeline runs show`; the exit code."""
    from components.metadata import get_run_detail, list_runs
    from pipeline import lineage_render as render

    if args.runs_command == "list" and args.limit < 1:
        raise Refused(f"--limit {args.limit}: expected a number of runs >= 1")
    cfg, store = _open_store(args)
    if args.runs_command == "list":
        doc = {"pipeline": cfg.pipeline_name, "store": cfg.metadata_uri,
               "runs": [r.to_json() for r in list_runs(store, cfg.pipeline_name, args.limit)]}
        lines = render.runs_list_text(doc)
    else:
        detail = get_run_detail(store, cfg.pipeline_name, args.run_id)
        if detail is None:
            raise Refused(f"no run {args.run_id!r} of pipeline {cfg.pipeline_name} in ML "
                          f"Metadata {cfg.metadata_uri}")
        from pipeline.build import NODE_ORDER

        doc = {"pipeline": cfg.pipeline_name, "store": cfg.metadata_uri, **detail.to_json()}
        ran = {c["name"] for c in doc["components"]}
        doc["not_run"] = [n for n in NODE_ORDER if n not in ran]
        lines = render.run_show_text(doc)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print("\n".join(lines))
    return 0
