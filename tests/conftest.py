"""Shared pytest fixtures: the local registry, test images, and the root-test lock."""
