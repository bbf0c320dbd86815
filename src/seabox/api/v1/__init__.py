"""The native /v1 API: JSON resources and NDJSON streams for the Seabox CLI and SDKs."""
