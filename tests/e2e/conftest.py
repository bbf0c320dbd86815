"""Fixtures for e2e tests live in tests/fixtures (the `api` client fixture is in tests/fixtures/server.py)."""
