"""The tenant resolvers a node agent serves on its tenants' gateways."""
