"""The control plane's HTTP side of the node protocol: what node agents call."""
