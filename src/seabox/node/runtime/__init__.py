"""OCI runtimes (runc, later runsc) driven as CLIs under conmon supervision."""
