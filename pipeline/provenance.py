"""What a run is made of, taken where it starts: `run_provenance(cfg)`.

- the project's git commit and whether the tree has uncommitted changes (tracked or untracked
  files outside .gitignore): one `git status` with a timeout (~20 ms here); where there is no
  git or no repository (a container image), `PIPELINE_GIT_COMMIT` and `PIPELINE_GIT_DIRTY`
  (`true`/`false`), which an image build can set, else "unknown";
- the resolved configuration (`config_to_dict` plus the absolute paths it resolves to), with
  every value under a key that names a password, secret or token replaced, and its sha256;
- the span and its input files as TFX lists them (name, size, sha256 from the digest cache the
  up-to-date check keeps, so an unchanged file costs one `stat`), when the data root is a
  local directory.

Recorded in ML Metadata with the run's request (`components.metadata.provenance`). Standard
library and the config only: no TensorFlow, no TFX.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from components.metadata.provenance import DataFile, RunProvenance
from pipeline.config import PipelineConfig, config_to_dict

REPO_ROOT = Path(__file__).resolve().parent.parent
GIT_COMMIT_ENV = "PIPELINE_GIT_COMMIT"
GIT_DIRTY_ENV = "PIPELINE_GIT_DIRTY"
GIT_TIMEOUT_SECONDS = 5.0
# A config key whose value is never recorded.
SECRET_KEY = re.compile(r"password|secret|token|credential", re.IGNORECASE)
REDACTED = "<redacted>"


def git_state(repo: Path = REPO_ROOT, env: dict[str, str] | None = None
              ) -> tuple[str, bool | None]:
    """(commit, dirty) of `repo`: `git status --porcelain=v2 --branch`; dirty when it lists
    any change or untracked file. Without git or a repository: the environment's
    `PIPELINE_GIT_COMMIT` / `PIPELINE_GIT_DIRTY`, else the commit read from `.git` (dirty
    unknown), else ("unknown", None)."""
    env = os.environ if env is None else env
    if (repo / ".git").exists():
        try:
            proc = subprocess.run(
                ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=normal"],
                cwd=repo, capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS,
                env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})  # a status takes no lock
        except (OSError, subprocess.SubprocessError):
            proc = None
        if proc is not None and proc.returncode == 0:
            lines = proc.stdout.splitlines()
            oid = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")),
                       "")
            if re.fullmatch(r"[0-9a-f]{40,64}", oid):
                return oid, any(not line.startswith("#") for line in lines)
    if env.get(GIT_COMMIT_ENV):
        dirty = {"true": True, "1": True, "false": False, "0": False}.get(
            env.get(GIT_DIRTY_ENV, "").strip().lower())
        return env[GIT_COMMIT_ENV].strip(), dirty
    return _head_commit(repo / ".git") or "unknown", None


def _head_commit(git_dir: Path) -> str | None:
    """The commit `HEAD` names, read from the files (a loose or packed ref); None when not
    readable."""
    try:
        if git_dir.is_file():  # a worktree: "gitdir: <path>"
            git_dir = Path(git_dir.read_text().split(":", 1)[1].strip())
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None
        ref = head[5:]
        if (git_dir / ref).is_file():
            return (git_dir / ref).read_text().strip() or None
        for line in (git_dir / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        return None
    return None


def redact(data: Any) -> Any:
    """`data` with the value of every key naming a password, secret, token or credential
    replaced (a key naming where the secret is, such as `password_env`, included)."""
    if isinstance(data, dict):
        return {k: REDACTED if SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v)
                for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data


def resolved_config(cfg: PipelineConfig) -> dict[str, Any]:
    """The configuration as recorded: every key, the paths it resolves to, no secret."""
    config = config_to_dict(cfg)
    config["_resolved"] = {
        "data_root": os.path.abspath(cfg.data.root), "schema": os.path.abspath(cfg.data.schema),
        "pipeline_root": cfg.resolved_pipeline_root,
        "base_path": os.path.abspath(cfg.pusher.base_path),
    }
    return redact(config)


def config_digest(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def input_files(cfg: PipelineConfig, span: int) -> tuple[DataFile, ...]:
    """The files a run on `span` reads, with sizes and content digests; () when the data root
    is not a local directory.

    Raises:
      DataCheckError: no file matches.
      OSError: a file cannot be read.
    """
    from components.data_check import find_input_files
    from components.data_check.fingerprint import CACHE_FILE, file_digests
    from pipeline.build import span_input_patterns

    root = os.path.abspath(cfg.data.root)
    if not os.path.isdir(root):
        return ()
    files = find_input_files(root, span_input_patterns(cfg, span))
    digests = file_digests(files, os.path.join(cfg.resolved_pipeline_root, CACHE_FILE))
    return tuple(DataFile(name=os.path.relpath(path, root), path=path,
                          size=os.path.getsize(path), sha256=digests[path]) for path in files)


def run_provenance(cfg: PipelineConfig, *, with_data: bool = True, orchestrator: str = "local",
                   orchestrator_run_id: str = "") -> RunProvenance:
    """The provenance of a run of `cfg` (see the module docstring); `with_data` False: no span
    and no files (a partial run reuses another run's data). A span or files that cannot be
    read are left out (the pre-flight check reports them).
    """
    from components.data_check import DataCheckError
    from pipeline.spans import selected_span

    commit, dirty = git_state()
    config = resolved_config(cfg)
    span, files = None, ()
    root = os.path.abspath(cfg.data.root)
    if with_data:
        try:
            span = selected_span(cfg)
            files = input_files(cfg, span)
        except (DataCheckError, OSError):
            pass
    return RunProvenance(
        git_commit=commit, git_dirty=dirty, config_sha256=config_digest(config), config=config,
        span=span, data_root=root if os.path.isdir(root) else "", data_files=files,
        orchestrator=orchestrator, orchestrator_run_id=orchestrator_run_id)
