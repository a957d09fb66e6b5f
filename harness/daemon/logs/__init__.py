"""Container log drivers: json-file (dockerd's on-disk format and rotation), local, none."""
