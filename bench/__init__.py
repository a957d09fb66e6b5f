"""Side-by-side benchmarks of refd and real dockerd (`nox -s bench`)."""
