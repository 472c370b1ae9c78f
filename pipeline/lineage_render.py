"""Text and Graphviz DOT for `pipeline lineage` and `pipeline runs`, from their JSON forms.

Pure functions over the dictionaries the commands print with `--format json` (so the three
formats cannot disagree); `render_image` runs Graphviz's `dot` for an SVG or PNG.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

# How long `dot` may take to lay out a chain of ~30 nodes (it takes ~50 ms).
DOT_TIMEOUT_SECONDS = 60
IMAGE_FORMATS = ("svg", "png")


class RenderError(RuntimeError):
    """An image cannot be made (no Graphviz, or it failed); the message says what to do."""


# --- summaries of artifacts and executions ------------------------------------------------


def _short(digest: str, n: int = 12) -> str:
    return digest[:n] if digest else "-"


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _metrics_text(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k} {_number(v)}" for k, v in sorted(metrics.items()))


def _json_property(props: dict[str, Any], key: str, default: Any) -> Any:
    try:
        return json.loads(props[key]) if props.get(key) else default
    except (TypeError, ValueError):
        return default


def trainer_settings(execution: dict[str, Any]) -> dict[str, Any]:
    """Steps, batch, workers and communication from a Trainer execution's properties
    (`train_args` and the project's `custom_config`); {} for another execution."""
    props = execution.get("properties", {})
    if "train_args" not in props:
        return {}
    train_args = _json_property(props, "train_args", {})
    custom = _json_property(props, "custom_config", {})
    trainer = custom.get("trainer", {}) if isinstance(custom, dict) else {}
    distribution = trainer.get("distribution", {})
    model = custom.get("model", {}) if isinstance(custom, dict) else {}
    return {k: v for k, v in {
        "train_steps": train_args.get("num_steps", trainer.get("train_steps")),
        "batch_size": trainer.get("batch_size"), "epochs": trainer.get("epochs"),
        "learning_rate": trainer.get("learning_rate"),
        "workers": distribution.get("workers"),
        "communication": distribution.get("communication"),
        "hidden_units": model.get("hidden_units"),
    }.items() if v is not None}


def _settings_text(settings: dict[str, Any]) -> str:
    parts = []
    if "train_steps" in settings:
        parts.append(f"{settings['train_steps']} steps")
    if "batch_size" in settings:
        parts.append(f"batch {settings['batch_size']}")
    if "workers" in settings:
        n = settings["workers"]
        parts.append(f"{n} worker{'s' if n != 1 else ''}")
    if "communication" in settings:
        parts.append(f"communication {settings['communication']}")
    if "hidden_units" in settings:
        parts.append(f"hidden units {settings['hidden_units']}")
    return ", ".join(parts)


def artifact_summary(artifact: dict[str, Any]) -> str:
    """What matters about an artifact, in a few words (by its type and properties)."""
    p = artifact.get("properties", {})
    kind = artifact["type"]
    if kind == "Examples":
        return f"span {p.get('span', '?')}"
    if kind == "ModelEvaluation":
        metrics = _json_property(p, "metrics", {})
        return _metrics_text(metrics) if metrics else "metrics not recorded"
    if kind == "ModelBlessing" and "signature_blessed" in p:
        if p["signature_blessed"] == 1:
            return "signature verdict: passed"
        reasons = _json_property(p, "reasons", [])
        return "signature verdict: failed: " + ("; ".join(reasons) or "no reason recorded")
    if kind == "ModelBlessing" and "blessed" in p:
        return "blessed" if p["blessed"] == 1 else "not blessed"
    if kind == "Model" and "baseline_kind" in p:
        return f"baseline: {p.get('baseline_reason') or p['baseline_kind']}"
    if kind == "PushedModel":
        if p.get("pushed") != 1:
            return f"not pushed: {p.get('not_pushed_reason', '')}".rstrip(": ")
        reused = " (identical to it: version reused)" if p.get("reused_existing_version") else ""
        return (f"version {p.get('pushed_version')}, tag {p.get('tag', '-')}, pushed "
                f"{p.get('pushed_at', '?')} to {p.get('pushed_destination', '?')}{reused}, "
                f"git {_short(str(p.get('git_commit', '')))}")
    if kind == "DataFile":
        return f"{p.get('size', '?')} bytes, sha256 {_short(str(p.get('sha256', '')))}"
    return ""


def _duration(execution: dict[str, Any]) -> str:
    return f"{execution.get('seconds', 0):.1f} s"


# --- lineage as text --------------------------------------------------------------------


def lineage_text(doc: dict[str, Any]) -> list[str]:
    """The chain of `pipeline lineage --format json`, as lines."""
    lines = [doc["headline"], f"pipeline {doc['pipeline']}, ML Metadata {doc['store']}", ""]
    executions = {e["id"]: e for e in doc["executions"]}
    artifacts = {a["id"]: a for a in doc["artifacts"]}
    lines += _request_lines(doc["run_id"], doc.get("request"))
    data = doc["data"]
    spans = ", ".join(map(str, data["spans"])) or "?"
    if data["files"]:
        first = data["files"][0]
        root = first["path"][:-len(first["name"])] if first["path"].endswith(first["name"]) \
            else os.path.dirname(first["path"])
        lines.append(f"data: span {spans} under {root.rstrip('/')} "
                     f"(files recorded by run {data['recorded_by_run']})")
        width = max(len(f["name"]) for f in data["files"])
        lines += [f"  {f['name']:<{width}}  {f['size']:>10} bytes  sha256 {_short(f['sha256'])}"
                  for f in data["files"]]
    else:
        lines.append(f"data: span {spans} (input files not recorded: run before lineage was "
                     "recorded, or data not on a local disk)")
    lines.append("")
    width = max([len(s["node"]) for s in doc["steps"]] or [0])
    for step in doc["steps"]:
        e = executions[step["execution"]]
        lines.append(f"  {step['node']:<{width}}  execution {e['id']:<5} {e['state']:<9}  "
                     f"{e['started']}  {_duration(e)}")
        settings = trainer_settings(e)
        if settings:
            lines.append(f"  {'':<{width}}    settings: {_settings_text(settings)}")
        if step["node"] == "ImportSchemaGen" and e["properties"].get("schema_sha256"):
            lines.append(f"  {'':<{width}}    schema {e['properties'].get('schema_file', '?')} "
                         f"sha256 {_short(e['properties']['schema_sha256'])}")
        for output in step["outputs"]:
            a = artifacts[output["artifact"]]
            summary = artifact_summary(a)
            made = ""
            if a["produced_by"] is not None and a["produced_by"] != e["id"]:
                p = executions.get(a["produced_by"], {})
                made = (f" (made by execution {a['produced_by']} in run {p.get('run_id', '?')} "
                        f"at {p.get('ended', '?')})")
            mark = "  <-" if a["id"] in doc.get("focus", []) else ""
            lines.append(f"  {'':<{width}}    -> {a['type']} {a['id']}"
                         f"{': ' + summary if summary else ''}{made}{mark}")
    lines.append("")
    if doc["releases"]:
        lines.append("release operations:")
        for r in doc["releases"]:
            reason = f': "{r["reason"]}"' if r["reason"] else ""
            what = f"version {r['version']}" + (f" ({r['tag']})" if r["tag"] else "")
            outcome = r.get("details", {}).get("outcome")
            failed = f" [{outcome}]" if outcome and outcome != "done" else ""
            lines.append(f"  {r['time']}  {r['operation']:<9} {what} by {r['actor']}{reason}"
                         f"{failed}  (execution {r['execution']})")
    else:
        lines.append("release operations: none recorded")
    for other in doc.get("other_pushes", []):
        how = "reusing the version (same content)" if other["reused_existing_version"] else ""
        lines.append(f"also pushed as this version by run {other['run_id']} at {other['time']}"
                     f" (PushedModel {other['artifact']}) {how}".rstrip())
    return lines


def _request_lines(run_id: str, request: dict[str, Any] | None) -> list[str]:
    if not request:
        return [f"run {run_id}: who asked for it was not recorded"]
    trigger = f" ({request['trigger']})" if request.get("trigger") else ""
    reason = f', reason: "{request["reason"]}"' if request.get("reason") else ", no reason given"
    lines = [f"run {run_id}: asked by {request['user']}@{request['host']}{trigger} at "
             f"{request.get('requested_at') or '?'}{reason}"]
    p = request.get("provenance")
    if p:
        dirty = {True: " with uncommitted changes", False: " (clean)", None: ""}[p["git_dirty"]]
        orchestrator = p.get("orchestrator") or "?"
        if p.get("orchestrator_run_id"):
            orchestrator += f" (its run id {p['orchestrator_run_id']})"
        lines.append(f"  code: git {p['git_commit']}{dirty}")
        lines.append(f"  config: sha256 {_short(p['config_sha256'])}; orchestrator: "
                     f"{orchestrator}")
    return lines


# --- lineage as DOT ---------------------------------------------------------------------


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def lineage_dot(doc: dict[str, Any]) -> str:
    """The chain as a Graphviz digraph: data files (notes), executions (boxes), artifacts
    (ellipses), release operations (hexagons), left to right."""
    executions = {e["id"]: e for e in doc["executions"]}
    artifacts = {a["id"]: a for a in doc["artifacts"]}
    out = ["digraph lineage {", "  rankdir=LR;",
           '  node [fontname="Helvetica", fontsize=10];',
           f"  label={_quote(doc['headline'])}; labelloc=t; fontname=\"Helvetica\";"]
    first = None
    for f in doc["data"]["files"]:
        label = f"{f['name']}\n{f['size']} bytes sha256 {_short(f['sha256'])}"
        out.append(f"  f{f['artifact_id']} [shape=note, label={_quote(label)}];")
    for step in doc["steps"]:
        e = executions[step["execution"]]
        first = first or e["id"]
        label = f"{step['node']}\nexecution {e['id']} {e['state']}\n{e['started']}"
        settings = trainer_settings(e)
        if settings:
            label += "\n" + _settings_text(settings)
        out.append(f"  e{e['id']} [shape=box, style=rounded, label={_quote(label)}];")
    for a in artifacts.values():
        label = f"{a['type']} {a['id']}"
        summary = artifact_summary(a)
        if summary:
            label += "\n" + summary
        if a["produced_by"] is not None and a["produced_by"] not in {
                s["execution"] for s in doc["steps"]}:
            p = executions.get(a["produced_by"], {})
            label += f"\nmade by execution {a['produced_by']} (run {p.get('run_id', '?')})"
        style = ", style=bold" if a["id"] in doc.get("focus", []) else ""
        out.append(f"  a{a['id']} [shape=ellipse{style}, label={_quote(label)}];")
    for r in doc["releases"]:
        label = (f"{r['operation']} version {r['version']}\n{r['actor']} {r['time']}"
                 + (f"\n{r['reason']}" if r["reason"] else ""))
        out.append(f"  r{r['execution']} [shape=hexagon, label={_quote(label)}];")
    for f in doc["data"]["files"]:
        gen = next((s for s in doc["steps"] if s["node"] == "ImportExampleGen"), None)
        if gen is not None:
            out.append(f"  f{f['artifact_id']} -> e{gen['execution']};")
    for step in doc["steps"]:
        for i in step["inputs"]:
            out.append(f"  a{i['artifact']} -> e{step['execution']} [label={_quote(i['key'])}];")
        for o in step["outputs"]:
            out.append(f"  e{step['execution']} -> a{o['artifact']};")
    pushed = doc.get("pushed", [])
    for r in doc["releases"]:
        for a in pushed:
            out.append(f"  a{a} -> r{r['execution']} [style=dashed];")
    out.append("}")
    return "\n".join(out) + "\n"


def render_image(dot: str, fmt: str) -> bytes:
    """`dot` laid out by Graphviz as `fmt` (svg or png).

    Raises:
      RenderError: Graphviz is not installed or failed.
    """
    exe = shutil.which("dot")
    if exe is None:
        raise RenderError("Graphviz's `dot` is not installed (make setup installs it: "
                          "scripts/setup_graphviz.sh); --format dot prints the graph as text")
    try:
        proc = subprocess.run([exe, f"-T{fmt}"], input=dot.encode(), capture_output=True,
                              timeout=DOT_TIMEOUT_SECONDS)
    except (OSError, subprocess.SubprocessError) as e:
        raise RenderError(f"Graphviz's dot failed: {e}") from None
    if proc.returncode != 0 or not proc.stdout:
        why = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RenderError(f"Graphviz's dot failed (exit {proc.returncode}): "
                          f"{why[-1] if why else 'no output'}")
    return proc.stdout


# --- what was derived from some data ------------------------------------------------------


def derived_text(doc: dict[str, Any]) -> list[str]:
    """`pipeline lineage --data` as lines."""
    lines = [doc["headline"], f"pipeline {doc['pipeline']}, ML Metadata {doc['store']}", ""]
    for f in doc.get("files", []):
        lines.append(f"  file {f['path']}: {f['size']} bytes, sha256 {_short(f['sha256'])}")
    if doc.get("runs"):
        lines.append(f"  read by run{'s' if len(doc['runs']) > 1 else ''} "
                     f"{', '.join(doc['runs'])}")
    lines.append(f"  Examples: {', '.join(map(str, doc['examples'])) or 'none'}")
    lines.append("")
    if not doc["models"]:
        lines.append("no model was trained on it")
    else:
        lines.append("models trained on it:")
    for m in doc["models"]:
        spans = ", ".join(map(str, m["spans"]))
        lines.append(f"  Model {m['model']}  trained by execution {m['trained_by']} in run "
                     f"{m['run_id']} at {m['trained_at']} (span {spans})")
        if not m["pushed"]:
            lines.append("      not pushed")
        for p in m["pushed"]:
            labels = ", ".join(p.get("labels", []))
            lines.append(f"      pushed as version {p['version']} ({p['tag']}) of {p['base_path']}"
                         f" at {p['pushed_at']}{'; labelled ' + labels + ' now' if labels else ''}")
    served = doc.get("served_versions", [])
    lines.append("")
    lines.append("served versions derived from it: " + (", ".join(
        f"{v['version']} ({v['tag']}{', ' + ', '.join(v['labels']) if v['labels'] else ''})"
        for v in served) or "none"))
    return lines


# --- runs -------------------------------------------------------------------------------


def runs_list_text(doc: dict[str, Any]) -> list[str]:
    runs = doc["runs"]
    if not runs:
        return [f"no runs of pipeline {doc['pipeline']} in {doc['store']}"]
    lines = [f"{'RUN':<24} {'STARTED':<25} {'STATUS':<9} {'SPAN':>4} {'CACHED':>6}  "
             f"{'PUSHED':<28} ASKED BY / REASON"]
    for r in runs:
        pushed = "-"
        if r["pushed"]:
            pushed = f"v{r['pushed']['version']} {r['pushed']['tag']}"
            if not r["pushed"]["new"]:
                pushed += " (again)"
        request = r.get("request") or {}
        who = f"{request.get('user', '')}@{request.get('host', '')}" if request else "-"
        why = f": {request['reason']}" if request.get("reason") else ""
        span = "-" if r["span"] is None else str(r["span"])
        lines.append(f"{r['run_id']:<24} {r['started']:<25} {r['status']:<9} {span:>4} "
                     f"{str(r['cached']) + '/' + str(r['executions']):>6}  {pushed:<28} "
                     f"{who}{why}")
    return lines


def run_show_text(doc: dict[str, Any]) -> list[str]:
    lines = [f"run {doc['run_id']} of pipeline {doc['pipeline']}: {doc['status']}, "
             f"{doc['started']} to {doc['ended']} ({doc['seconds']} s)"]
    request = doc.get("request")
    lines += _request_lines(doc["run_id"], {**request, "provenance": doc.get("provenance")}
                            if request else None)[0:]
    p = doc.get("provenance") or {}
    if p.get("data_files"):
        names = ", ".join(f["name"] for f in p["data_files"])
        lines.append(f"  data: span {p.get('span')}: {names}")
    lines.append("")
    width = max([len(c["name"]) for c in doc["components"]] or [0])
    for c in doc["components"]:
        lines.append(f"  {c['name']:<{width}}  {c['status']:<9}  {c['seconds']:7.2f} s  "
                     f"execution {c['execution']}  {c['started']}")
    for name in doc.get("not_run", []):
        lines.append(f"  {name:<{width}}  not run")
    lines.append("")
    lines.append(f"metrics: {_metrics_text(doc['metrics']) if doc['metrics'] else 'none recorded'}")
    blessed = {True: "yes", False: "no", None: "-"}
    signature = {True: "passed", False: "failed", None: "-"}[doc["signature_blessed"]]
    if doc["signature_reasons"]:
        signature += ": " + "; ".join(doc["signature_reasons"])
    lines.append(f"blessed: {blessed[doc['blessed']]}; signature: {signature}")
    pushed = doc.get("pushed")
    if pushed:
        state = "pushed" if pushed["new"] else "already serving (not pushed again)"
        lines.append(f"{state}: version {pushed['version']} ({pushed['tag']}) at {pushed['path']}")
    else:
        lines.append("pushed: nothing")
    return lines
