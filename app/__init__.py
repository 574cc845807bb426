"""Outbound: a MongoDB-backed dispatcher for multi-step cold-outreach email sequences."""

__version__ = "0.1.0"
