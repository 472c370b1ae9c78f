"""ImportExampleGen where no TFX driver runs: its executor resolves the span itself
(``executor.SpanResolvingExecutor``, used by builds compiled for Kubeflow)."""
