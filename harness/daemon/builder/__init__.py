"""The classic builder: Dockerfile parsing, instruction dispatch, build contexts and the build cache."""
