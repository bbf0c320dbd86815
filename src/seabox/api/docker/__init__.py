"""Docker Engine API compatibility: the docker CLI and SDK drive the same services as the native /v1 API."""
