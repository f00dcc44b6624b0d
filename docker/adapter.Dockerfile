# syntax=docker/dockerfile:1
# mcp-adapter: turns stdio MCP servers, remote MCP servers and OpenAPI services into
# one streamable-HTTP MCP endpoint. Carries Node.js (npx) and Python with uv (uvx), so
# the common stdio servers run without a custom image.
# Build from the repository root:  docker build -f docker/adapter.Dockerfile -t mcp-gateway/adapter:dev .
# NODE_VERSION follows NODE22_PACKAGE in scripts/versions.env (a test keeps them equal).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG NODE_VERSION=22.23.3
# Where node and npm come from: the official image of the same Debian release (the test
# build passes a local stand-in holding the same two paths: scripts/build-images.sh --local-bases).
ARG NODE_IMAGE=node:${NODE_VERSION}-bookworm-slim
ARG UV_VERSION=0.13.9

# ---- Node.js runtime
FROM ${NODE_IMAGE} AS node

# ---- build: the project in a venv, plus uv (its wheel ships the static uv/uvx binaries)
FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION
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
 && /opt/mcp-gateway/bin/pip install --no-deps . "uv==${UV_VERSION}" \
 && /opt/mcp-gateway/bin/pip uninstall -y pip setuptools wheel

# ---- runtime: Python + venv + node/npm/npx + uv/uvx; no compiler
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 mcp \
 && useradd --system --uid 10001 --gid mcp --home-dir /tmp --no-create-home --shell /usr/sbin/nologin mcp
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npx --version
COPY --from=build /opt/mcp-gateway /opt/mcp-gateway
# The root filesystem is read-only in the chart's pods: every cache npx and uvx
# write goes under /tmp, which the pod mounts as an emptyDir.
ENV PATH=/opt/mcp-gateway/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    npm_config_cache=/tmp/.npm \
    npm_config_update_notifier=false \
    UV_CACHE_DIR=/tmp/.cache/uv \
    UV_TOOL_DIR=/tmp/.local/uv-tools \
    UV_PYTHON_INSTALL_DIR=/tmp/.local/uv-python \
    UV_PYTHON_PREFERENCE=system
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["mcp-adapter"]
CMD ["--config", "/etc/mcp-adapter/adapter.yaml", "--host", "0.0.0.0", "--port", "8080"]
