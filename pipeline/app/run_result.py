"""What a run did, as every runner reports it (`pipeline run --json` prints `RunResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Exit codes of `pipeline run` (and, for 0-2, of every command).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_NOT_RELEASED = 3


@dataclass
class ComponentRun:
    name: str
    status: str  # succeeded | cached | failed | not run
    seconds: float
    cached: bool


@dataclass
class RunResult:
    run_id: str
    status: str  # succeeded | failed
    components: list[ComponentRun] = field(default_factory=list)
    pushed: dict[str, Any] | None = None
    blessed: bool | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    # Why the Evaluator did not bless the candidate, one line per failed threshold.
    validation_failures: list[str] = field(default_factory=list)
    metadata_uri: str = ""
    pipeline_root: str = ""
    log_file: str = ""
    span: int | None = None
    error: str | None = None
    # config | input | run, when the run failed (pipeline.app.run_log.error_kind).
    error_kind: str | None = None
    # Set when nothing changed since that run (see pipeline/app/up_to_date.py): its outputs are
    # reused as they are and TFX is not started.
    up_to_date_with: str | None = None
    # A partial run: the nodes asked for, those that ran, those reused from `base_run` and
    # those not run (runners.partial.PartialRun.to_json()); None for a whole run.
    partial: dict[str, Any] | None = None
    # Who asked for the run and why (components.metadata.RunRequest.to_json()), as recorded
    # in ML Metadata; None when the run was not asked for from the CLI.
    request: dict[str, Any] | None = None
    # What the Evaluator compared the candidate with (pipeline.app.report.baseline_of).
    baseline: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        """The CLI's exit code (README, "Exit codes"): 0 done (pushed, already serving or up to
        date), 1 the run failed or its input was refused, 2 a configuration it cannot use, 3
        done but the model was not released because a quality gate refused it."""
        if self.status != "succeeded":
            return EXIT_CONFIG if self.error_kind == "config" else EXIT_FAILED
        if self.blessed is False and not self.pushed:
            return EXIT_NOT_RELEASED
        return EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "components": [c.__dict__ for c in self.components],
            "pushed": self.pushed,
            "blessed": self.blessed,
            "metrics": self.metrics,
            "validation_failures": self.validation_failures,
            "metadata": {"uri": self.metadata_uri},
            "pipeline_root": self.pipeline_root,
            "log_file": self.log_file,
            "span": self.span,
            "error": self.error,
            "error_kind": self.error_kind,
            "exit_code": self.exit_code,
            "up_to_date_with": self.up_to_date_with,
            "partial": self.partial,
            "request": self.request,
            "baseline": self.baseline,
        }
