# syntax=docker/dockerfile:1
# Example: an adapter image with a stdio MCP server preinstalled, for servers that need
# system packages or that must start without reaching a package registry.
#   docker build -f docker/custom-adapter.example.Dockerfile -t registry.example.com/mcp-adapter-git:1.0.0 .
# then reference it from an Upstream:
#   spec:
#     stdio:
#       image: registry.example.com/mcp-adapter-git:1.0.0
#       command: mcp-server-git
#       args: ["--repository", "/tmp/repo"]
# Build FROM the released adapter image (same tag as the chart's appVersion) so the
# image keeps mcp-adapter as its entry point and the non-root user.
FROM ghcr.io/mcp-gateway/mcp-adapter:0.1.0
USER 0
# System packages the server needs at run time (git for mcp-server-git); nothing else.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git \
 && rm -rf /var/lib/apt/lists/*
# Preinstall the server (pinned) in an environment of its own, so its dependencies never
# meet the adapter's, instead of fetching it with `uvx` at every pod start.
RUN UV_TOOL_DIR=/opt/mcp-tools UV_TOOL_BIN_DIR=/usr/local/bin \
    uv tool install --no-cache "mcp-server-git==2026.10.19"
# Node.js servers: `npm install -g` puts them on PATH, e.g.
# RUN npm install -g --no-fund --no-audit @modelcontextprotocol/server-filesystem@<exact-version>
USER 10001:10001
