"""Generated protobuf package ``eagle.v1`` (do not edit; see eagle_agent/proto/generate.py)."""
