# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help run test lint bench bench-peers soak trace-screenshot mutation tools images kind-up sync lock clean

help:
	@echo "make run     - start the gateway locally with demo upstreams (no Kubernetes, no database);"
	@echo "              TRACES=http://127.0.0.1:4318 exports traces to a local Jaeger or collector"
	@echo "make test    - install everything the tests need, then ruff, mypy and pytest"
	@echo "make bench   - benchmarks: gateway overhead, aggregation, operator at scale"
	@echo "make bench-peers - our gateway beside peer gateways (ContextForge), same upstream and load"
	@echo "make trace-screenshot - Jaeger UI (built from its source: JAEGER_UI_SOURCE=...) photographs one trace into docs/trace.png"
	@echo "make mutation - mutation testing (mutmut) of the security core; scores in tests/README.md"
	@echo "make images  - build the gateway, operator and adapter images (docker or podman; IMAGES_ARGS=--local-bases)"
	@echo "make kind-up - a local kind cluster with the chart installed (needs Docker and kind)"
	@echo "make lock    - re-resolve the dependency locks (requirements/*.txt) after editing pyproject.toml"

# TRACES=<OTLP/HTTP base URL>, e.g. `make run TRACES=http://127.0.0.1:4318` with a local Jaeger:
# the gateway and the demo adapters export their spans there (OTEL_EXPORTER_OTLP_ENDPOINT).
run:
	@scripts/setup-python.sh
	$(if $(TRACES),OTEL_EXPORTER_OTLP_ENDPOINT=$(TRACES) ).venv/bin/python -m mcp_gateway.local --config examples/local.yaml

test:
	scripts/test.sh $(PYTEST_ARGS)

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

# The benchmarks' load generator, from Debian's packages.
INSTALL_WRK = command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)

bench:
	@scripts/setup-python.sh
	@$(INSTALL_WRK)
	@scripts/start-postgres.sh
	@scripts/build-tools.sh
	.venv/bin/python -m bench

# Not part of `make test`: installs the peers into their own venvs (scripts/install-peers.sh).
bench-peers:
	@scripts/setup-python.sh
	@$(INSTALL_WRK)
	@scripts/install-peers.sh
	.venv/bin/python -m bench.peers $(BENCH_ARGS)

# Not part of `make test`: Jaeger UI is built from its source (JAEGER_UI_SOURCE: a git directory of
# jaegertracing/jaeger-ui or its v1.62.0 source tree; no registry serves the built UI), then headless
# Chromium photographs one tool call's trace in it into docs/trace.png (tests/console/test_jaeger_ui.py).
trace-screenshot:
	@scripts/setup-python.sh
	@scripts/setup-browser.sh
	@scripts/build-tools.sh jaeger
	@scripts/build-jaeger-ui.sh $(JAEGER_UI_SOURCE) >/dev/null
	MCP_DOCS_TRACE_PNG=docs/trace.png MCP_TEST_BIN=$${MCP_GATEWAY_CACHE:-$$HOME/.cache/mcp-gateway}/bin \
		.venv/bin/pytest -m jaeger_ui tests/console/test_jaeger_ui.py -q

soak:
	scripts/test.sh -m soak

mutation:
	@scripts/setup-python.sh
	@.venv/bin/python -c "import mutmut" 2>/dev/null || .venv/bin/pip install -q -e '.[mutation]'
	@scripts/start-postgres.sh
	scripts/mutation.sh

tools:
	scripts/build-tools.sh

images:
	scripts/build-images.sh $(IMAGES_ARGS)

kind-up:
	scripts/kind-up.sh

# Re-resolve requirements/*.txt from pyproject.toml (ARGS=--upgrade for the newest allowed versions).
lock:
	scripts/lock.sh $(ARGS)

# crds/ is the source of the CRDs; the chart ships a copy (tests/chart checks they are equal).
sync:
	rm -f charts/mcp-gateway/crds/*.yaml && cp crds/*.yaml charts/mcp-gateway/crds/

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache tests/artifacts
