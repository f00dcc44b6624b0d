"""The gateway tests' fixtures (feature server, module-scoped spawn, routing files), reused here."""

from tests.gateway.conftest import feature, feature_module, routing, spawn_module

__all__ = ["feature", "feature_module", "routing", "spawn_module"]
