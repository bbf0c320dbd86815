"""Container networking on a node: netns, veth, tenant bridges, IPAM and nftables."""
