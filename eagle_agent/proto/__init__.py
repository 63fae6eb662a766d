"""Generated gRPC stubs of the agent protocol (``protos/eagle/v1/agent.proto``).

Import them as ``from eagle_agent.proto.eagle.v1 import agent_pb2, agent_pb2_grpc``. Regenerate with
``python -m eagle_agent.proto.generate`` after editing the proto; a test fails when they are stale.
"""
