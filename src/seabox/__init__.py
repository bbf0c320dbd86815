"""Seabox: a self-hostable container-native cloud."""

__version__ = "0.1.0"
