from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CLASS_UNSPECIFIED: _ClassVar[ErrorClass]
    ERROR_CLASS_BUILD: _ClassVar[ErrorClass]
    ERROR_CLASS_CONVERT: _ClassVar[ErrorClass]
    ERROR_CLASS_COMPILE: _ClassVar[ErrorClass]
    ERROR_CLASS_UNSUPPORTED: _ClassVar[ErrorClass]
    ERROR_CLASS_RUNTIME: _ClassVar[ErrorClass]
    ERROR_CLASS_TIMEOUT: _ClassVar[ErrorClass]

class ReportOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_OUTCOME_UNSPECIFIED: _ClassVar[ReportOutcome]
    REPORT_OUTCOME_ACCEPTED: _ClassVar[ReportOutcome]
    REPORT_OUTCOME_DUPLICATE: _ClassVar[ReportOutcome]
    REPORT_OUTCOME_STALE_LEASE: _ClassVar[ReportOutcome]
ERROR_CLASS_UNSPECIFIED: ErrorClass
ERROR_CLASS_BUILD: ErrorClass
ERROR_CLASS_CONVERT: ErrorClass
ERROR_CLASS_COMPILE: ErrorClass
ERROR_CLASS_UNSUPPORTED: ErrorClass
ERROR_CLASS_RUNTIME: ErrorClass
ERROR_CLASS_TIMEOUT: ErrorClass
REPORT_OUTCOME_UNSPECIFIED: ReportOutcome
REPORT_OUTCOME_ACCEPTED: ReportOutcome
REPORT_OUTCOME_DUPLICATE: ReportOutcome
REPORT_OUTCOME_STALE_LEASE: ReportOutcome

class RegisterRequest(_message.Message):
    __slots__ = ("token", "device", "hostname", "capabilities", "backend", "backend_check", "agent_version", "host_facts")
    class HostFactsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    BACKEND_CHECK_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOST_FACTS_FIELD_NUMBER: _ClassVar[int]
    token: str
    device: str
    hostname: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    backend: str
    backend_check: BackendCheck
    agent_version: str
    host_facts: _containers.ScalarMap[str, str]
    def __init__(self, token: _Optional[str] = ..., device: _Optional[str] = ..., hostname: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., backend: _Optional[str] = ..., backend_check: _Optional[_Union[BackendCheck, _Mapping]] = ..., agent_version: _Optional[str] = ..., host_facts: _Optional[_Mapping[str, str]] = ...) -> None: ...

class BackendCheck(_message.Message):
    __slots__ = ("ok", "found", "missing")
    class FoundEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MissingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    OK_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    found: _containers.ScalarMap[str, str]
    missing: _containers.ScalarMap[str, str]
    def __init__(self, ok: _Optional[bool] = ..., found: _Optional[_Mapping[str, str]] = ..., missing: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("agent_id", "session", "settings")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    session: str
    settings: ServerSettings
    def __init__(self, agent_id: _Optional[str] = ..., session: _Optional[str] = ..., settings: _Optional[_Union[ServerSettings, _Mapping]] = ...) -> None: ...

class ServerSettings(_message.Message):
    __slots__ = ("lease_s", "heartbeat_s", "max_wait_s", "server_version")
    LEASE_S_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_S_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_S_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    lease_s: float
    heartbeat_s: float
    max_wait_s: float
    server_version: str
    def __init__(self, lease_s: _Optional[float] = ..., heartbeat_s: _Optional[float] = ..., max_wait_s: _Optional[float] = ..., server_version: _Optional[str] = ...) -> None: ...

class LeaseJobRequest(_message.Message):
    __slots__ = ("agent_id", "session", "device", "capabilities", "wait_s")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    WAIT_S_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    session: str
    device: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    wait_s: float
    def __init__(self, agent_id: _Optional[str] = ..., session: _Optional[str] = ..., device: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., wait_s: _Optional[float] = ...) -> None: ...

class LeaseJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class ProtocolParams(_message.Message):
    __slots__ = ("runs", "warmup", "group_size", "pause_s")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    WARMUP_FIELD_NUMBER: _ClassVar[int]
    GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAUSE_S_FIELD_NUMBER: _ClassVar[int]
    runs: int
    warmup: int
    group_size: int
    pause_s: float
    def __init__(self, runs: _Optional[int] = ..., warmup: _Optional[int] = ..., group_size: _Optional[int] = ..., pause_s: _Optional[float] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "lease_id", "arch_index", "arch_str", "runtime", "precision", "protocol", "attempt", "lease_expires_at", "campaign_id", "canonical_key")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    ARCH_INDEX_FIELD_NUMBER: _ClassVar[int]
    ARCH_STR_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    CANONICAL_KEY_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    lease_id: str
    arch_index: int
    arch_str: str
    runtime: str
    precision: str
    protocol: ProtocolParams
    attempt: int
    lease_expires_at: float
    campaign_id: int
    canonical_key: str
    def __init__(self, job_id: _Optional[int] = ..., lease_id: _Optional[str] = ..., arch_index: _Optional[int] = ..., arch_str: _Optional[str] = ..., runtime: _Optional[str] = ..., precision: _Optional[str] = ..., protocol: _Optional[_Union[ProtocolParams, _Mapping]] = ..., attempt: _Optional[int] = ..., lease_expires_at: _Optional[float] = ..., campaign_id: _Optional[int] = ..., canonical_key: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("agent_id", "session", "job_id", "lease_id")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    session: str
    job_id: int
    lease_id: str
    def __init__(self, agent_id: _Optional[str] = ..., session: _Optional[str] = ..., job_id: _Optional[int] = ..., lease_id: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("ok", "lease_lost", "lease_expires_at")
    OK_FIELD_NUMBER: _ClassVar[int]
    LEASE_LOST_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    lease_lost: bool
    lease_expires_at: float
    def __init__(self, ok: _Optional[bool] = ..., lease_lost: _Optional[bool] = ..., lease_expires_at: _Optional[float] = ...) -> None: ...

class ReportResultRequest(_message.Message):
    __slots__ = ("agent_id", "session", "job_id", "lease_id", "latency_ms", "stats", "raw_ms", "versions", "runtime", "precision", "build_s", "convert_s")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    RAW_MS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    BUILD_S_FIELD_NUMBER: _ClassVar[int]
    CONVERT_S_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    session: str
    job_id: int
    lease_id: str
    latency_ms: float
    stats: _struct_pb2.Struct
    raw_ms: _containers.RepeatedScalarFieldContainer[float]
    versions: _containers.ScalarMap[str, str]
    runtime: str
    precision: str
    build_s: float
    convert_s: float
    def __init__(self, agent_id: _Optional[str] = ..., session: _Optional[str] = ..., job_id: _Optional[int] = ..., lease_id: _Optional[str] = ..., latency_ms: _Optional[float] = ..., stats: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., raw_ms: _Optional[_Iterable[float]] = ..., versions: _Optional[_Mapping[str, str]] = ..., runtime: _Optional[str] = ..., precision: _Optional[str] = ..., build_s: _Optional[float] = ..., convert_s: _Optional[float] = ...) -> None: ...

class ReportFailureRequest(_message.Message):
    __slots__ = ("agent_id", "session", "job_id", "lease_id", "error_class", "message")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_CLASS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    session: str
    job_id: int
    lease_id: str
    error_class: ErrorClass
    message: str
    def __init__(self, agent_id: _Optional[str] = ..., session: _Optional[str] = ..., job_id: _Optional[int] = ..., lease_id: _Optional[str] = ..., error_class: _Optional[_Union[ErrorClass, str]] = ..., message: _Optional[str] = ...) -> None: ...

class ReportResponse(_message.Message):
    __slots__ = ("outcome", "message")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    outcome: ReportOutcome
    message: str
    def __init__(self, outcome: _Optional[_Union[ReportOutcome, str]] = ..., message: _Optional[str] = ...) -> None: ...
