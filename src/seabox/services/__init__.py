"""Application services shared by the native /v1 API and the Docker Engine API."""
