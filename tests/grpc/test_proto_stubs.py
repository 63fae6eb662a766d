"""The committed stubs are what the proto generates (a stale stub fails here), and they import."""

from __future__ import annotations

from pathlib import Path

from eagle_agent.proto import generate


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    fresh = generate.generate(tmp_path)
    committed = generate.generated_files(generate.PACKAGE_DIR)
    assert [p.relative_to(tmp_path) for p in fresh] == [p.relative_to(generate.PACKAGE_DIR) for p in committed]
    for new, old in zip(fresh, committed, strict=True):
        assert old.exists(), f"{old} is missing: run python -m eagle_agent.proto.generate"
        assert new.read_bytes() == old.read_bytes(), (
            f"{old.name} is stale: the proto changed; run python -m eagle_agent.proto.generate"
        )


def test_grpc_stub_imports_its_messages_relatively() -> None:
    from eagle_agent.proto.eagle.v1 import agent_pb2, agent_pb2_grpc

    text = Path(agent_pb2_grpc.__file__).read_text()
    assert "from . import agent_pb2" in text
    assert "from eagle.v1" not in text
    service = agent_pb2.DESCRIPTOR.services_by_name["AgentService"]
    assert [m.name for m in service.methods] == ["Register", "LeaseJob", "Heartbeat", "ReportResult", "ReportFailure"]


def test_error_classes_and_outcomes_match_the_agent_and_the_store() -> None:
    from eagle_agent.backends import ErrorClass
    from eagle_agent.proto.eagle.v1 import agent_pb2 as pb
    from latbench.store.queue import ERROR_CLASSES, ReportOutcome

    names = [n.removeprefix("ERROR_CLASS_").lower() for n in pb.ErrorClass.keys()[1:]]
    assert names == [e.value for e in ErrorClass] == list(ERROR_CLASSES)
    outcomes = [n.removeprefix("REPORT_OUTCOME_").lower() for n in pb.ReportOutcome.keys()[1:]]
    assert outcomes == [o.value for o in ReportOutcome]


def test_generation_errors_are_explained(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(generate.GenerateError, match="proto sources not found"):
        generate.generate(tmp_path / "out", proto_root=tmp_path / "nowhere")
    broken = tmp_path / "protos" / "eagle" / "v1"
    broken.mkdir(parents=True)
    (broken / "agent.proto").write_text('syntax = "proto3";\nmessage {\n')
    with pytest.raises(generate.GenerateError, match=r"protoc failed on eagle/v1/agent\.proto: .*agent\.proto:2"):
        generate.generate(tmp_path / "out", proto_root=tmp_path / "protos")
