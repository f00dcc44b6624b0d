"""Pieces shared by the adapter, the gateway and the operator."""
