"""The node agent: everything root-level on one host (images, runtime, network, volumes)."""
