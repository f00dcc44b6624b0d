# syntax=docker/dockerfile:1
# mcp-operator: reconciles Tenant/Profile/Upstream resources (Kopf).
# Build from the repository root:  docker build -f docker/operator.Dockerfile -t mcp-gateway/operator:dev .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---- build: install the project and its dependencies into a self-contained venv
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/mcp-gateway
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/runtime.txt requirements/runtime.txt
COPY common/mcp_common common/mcp_common
COPY adapter/mcp_adapter adapter/mcp_adapter
COPY gateway/mcp_gateway gateway/mcp_gateway
COPY operator/mcp_operator operator/mcp_operator
# The locked versions, hash-checked (requirements/runtime.txt), then the project without resolving again.
RUN /opt/mcp-gateway/bin/pip install --require-hashes -r requirements/runtime.txt \
 && /opt/mcp-gateway/bin/pip install --no-deps . \
 && /opt/mcp-gateway/bin/pip uninstall -y pip setuptools wheel

# ---- runtime: the venv only; no compiler, no pip
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 mcp \
 && useradd --system --uid 10001 --gid mcp --home-dir /tmp --no-create-home --shell /usr/sbin/nologin mcp \
 && python -m pip uninstall -y pip setuptools wheel
COPY --from=build /opt/mcp-gateway /opt/mcp-gateway
ENV PATH=/opt/mcp-gateway/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
ENTRYPOINT ["mcp-operator"]
