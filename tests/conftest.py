"""Shared pytest fixtures: the local registry, test images, and the root-test lock."""

pytest_plugins = [
    "tests.fixtures.registry", "tests.fixtures.images", "tests.fixtures.server", "tests.fixtures.debian",
    "tests.fixtures.cluster", "tests.fixtures.postgres",
]
