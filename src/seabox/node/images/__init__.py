"""Image handling on a node: references, pull (skopeo), unpack (umoci), overlay rootfs."""
