# syntax=docker/dockerfile:1
# The image every Kubeflow step and every TFJob worker runs: the project with its locked stack
# (uv.lock, frozen; the project's own dependencies only, no dev or airflow group), Python 3.10,
# a non-root user. docs/OPERATIONS.md, "Container image":
#
#   docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) -t REGISTRY/tfx-pipeline:TAG .  # CPU
#   docker build --build-arg UV_GROUPS="--group gpu" -t REGISTRY/tfx-pipeline:TAG-gpu .  # + CUDA
#   docker build --target beam-worker -t REGISTRY/tfx-pipeline-beam:TAG .     # Beam's workers
#
# No ENTRYPOINT: Kubeflow gives each step its command (python -m
# tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor --executor_class_path ...)
# and a TFJob its own (python -m components.trainer.worker JOB.json); `python` on PATH is the
# project's environment. tests/unit/test_dockerfile.py checks this file and runs its `uv sync`.

ARG PYTHON_IMAGE=python:3.10-slim-bookworm
ARG BEAM_SDK_IMAGE=apache/beam_python3.10_sdk:2.61.0

FROM ${PYTHON_IMAGE} AS build
# uv comes from PyPI, the version the lock was made with.
ARG UV_VERSION=0.13.9
# Dependency groups on top of the project's dependencies: "--group gpu" for CUDA's wheels.
ARG UV_GROUPS=""
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON=/usr/local/bin/python3.10 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /app
# The locked dependencies first: a change of the code alone reuses this layer.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-default-groups ${UV_GROUPS} --no-install-project
COPY pipeline ./pipeline
COPY components ./components
COPY runners ./runners
COPY data ./data
# The project itself (importable from any directory), then its bytecode: /app is read-only
# for the user the containers run as.
RUN uv sync --frozen --no-default-groups ${UV_GROUPS} \
    && .venv/bin/python -m compileall -q pipeline components runners data

FROM ${PYTHON_IMAGE} AS pipeline
# Numeric, so that Kubernetes' runAsNonRoot can check it.
ARG APP_UID=1000
# The commit the image is built from, recorded with every run (pipeline/provenance.py; the image
# has no .git): --build-arg GIT_COMMIT=$(git rev-parse HEAD) --build-arg GIT_DIRTY=$(...).
ARG GIT_COMMIT=unknown
ARG GIT_DIRTY=unknown
RUN useradd --uid "${APP_UID}" --user-group --create-home --home-dir /home/tfx \
        --shell /usr/sbin/nologin tfx
WORKDIR /app
COPY --from=build /app /app
# var/: a local run's working files (`pipeline run` in the container); everything else is
# read-only. The steps write to the pipeline root (gs://, s3:// or a volume).
RUN mkdir /app/var && chown "${APP_UID}:${APP_UID}" /app/var
# TF_USE_LEGACY_KERAS=1: Keras 2 (tf_keras) in every process that builds or loads a model
# (components/tf_process.py): TensorFlow reads it once, at its first import.
ENV PATH=/app/.venv/bin:$PATH \
    VIRTUAL_ENV=/app/.venv \
    PIPELINE_GIT_COMMIT=${GIT_COMMIT} \
    PIPELINE_GIT_DIRTY=${GIT_DIRTY} \
    TF_USE_LEGACY_KERAS=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER ${APP_UID}:${APP_UID}
CMD ["pipeline", "--help"]

# Beam's SDK worker entry point, for workers that start the image themselves (Dataflow's
# sdk_container_image, a portable runner's DOCKER environment): same environment, and Beam's
# boot as the entry point, as Beam's custom-container guide prescribes.
FROM ${BEAM_SDK_IMAGE} AS beam-sdk

FROM pipeline AS beam-worker
COPY --from=beam-sdk /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]

# The default target (the last stage): the pipeline's image.
FROM pipeline
