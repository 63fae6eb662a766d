"""Generated protobuf package ``eagle``."""
