# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help run test lint bench soak tools images kind-up sync clean

help:
	@echo "make run     - start the gateway locally with demo upstreams (no Kubernetes, no database)"
	@echo "make test    - install everything the tests need, then ruff, mypy and pytest"
	@echo "make bench   - benchmarks: gateway overhead, aggregation, operator at scale"
	@echo "make images  - build the gateway, operator and adapter images (docker or podman; IMAGES_ARGS=--local-bases)"
	@echo "make kind-up - a local kind cluster with the chart installed (needs Docker and kind)"

run:
	@scripts/setup-python.sh
	.venv/bin/python -m mcp_gateway.local --config examples/local.yaml

test:
	scripts/test.sh $(PYTEST_ARGS)

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

bench:
	@scripts/setup-python.sh
	@scripts/start-postgres.sh
	@scripts/build-tools.sh
	.venv/bin/python -m bench

soak:
	scripts/test.sh -m soak

tools:
	scripts/build-tools.sh

images:
	scripts/build-images.sh $(IMAGES_ARGS)

kind-up:
	scripts/kind-up.sh

# crds/ is the source of the CRDs; the chart ships a copy (tests/chart checks they are equal).
sync:
	rm -f charts/mcp-gateway/crds/*.yaml && cp crds/*.yaml charts/mcp-gateway/crds/

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache tests/artifacts
