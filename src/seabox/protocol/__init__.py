"""The node protocol: the messages and the link between the control plane and node agents."""

PROTOCOL_VERSION = 1
