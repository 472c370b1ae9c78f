"""What a run did, as every runner reports it (`pipeline run --json` prints `RunResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    # Set when nothing changed since that run (see pipeline/app/up_to_date.py): its outputs are
    # reused as they are and TFX is not started.
    up_to_date_with: str | None = None

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
            "up_to_date_with": self.up_to_date_with,
        }
