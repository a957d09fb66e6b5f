"""Containers: the model dockerd shows (inspect/list shapes), persistence, names and lifecycle."""
