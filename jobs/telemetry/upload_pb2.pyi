from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Platform(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLATFORM_UNSPECIFIED: _ClassVar[Platform]
    IOS: _ClassVar[Platform]
    ANDROID: _ClassVar[Platform]
    WEB: _ClassVar[Platform]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    CALL_START: _ClassVar[EventType]
    CALL_END: _ClassVar[EventType]
    CALL_FAILURE: _ClassVar[EventType]

class NetworkType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NETWORK_UNSPECIFIED: _ClassVar[NetworkType]
    WIFI: _ClassVar[NetworkType]
    NR_5G: _ClassVar[NetworkType]
    LTE: _ClassVar[NetworkType]
    UMTS_3G: _ClassVar[NetworkType]
    GSM_2G: _ClassVar[NetworkType]
    ETHERNET: _ClassVar[NetworkType]
PLATFORM_UNSPECIFIED: Platform
IOS: Platform
ANDROID: Platform
WEB: Platform
EVENT_TYPE_UNSPECIFIED: EventType
CALL_START: EventType
CALL_END: EventType
CALL_FAILURE: EventType
NETWORK_UNSPECIFIED: NetworkType
WIFI: NetworkType
NR_5G: NetworkType
LTE: NetworkType
UMTS_3G: NetworkType
GSM_2G: NetworkType
ETHERNET: NetworkType

class SignedUpload(_message.Message):
    __slots__ = ("format_version", "header", "payload", "signature_alg", "key_id", "signature")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_ALG_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    header: bytes
    payload: bytes
    signature_alg: str
    key_id: str
    signature: bytes
    def __init__(self, format_version: _Optional[int] = ..., header: _Optional[bytes] = ..., payload: _Optional[bytes] = ..., signature_alg: _Optional[str] = ..., key_id: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class TimeSyncSample(_message.Message):
    __slots__ = ("device_ms", "server_ms", "rtt_ms")
    DEVICE_MS_FIELD_NUMBER: _ClassVar[int]
    SERVER_MS_FIELD_NUMBER: _ClassVar[int]
    RTT_MS_FIELD_NUMBER: _ClassVar[int]
    device_ms: int
    server_ms: int
    rtt_ms: int
    def __init__(self, device_ms: _Optional[int] = ..., server_ms: _Optional[int] = ..., rtt_ms: _Optional[int] = ...) -> None: ...

class BatchHeader(_message.Message):
    __slots__ = ("batch_id", "device_id", "platform", "app_version", "schema_version", "sent_at_ms", "payload_sha256", "event_count", "time_sync", "attestation", "build_environment")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    APP_VERSION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SHA256_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    TIME_SYNC_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    BUILD_ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    device_id: str
    platform: Platform
    app_version: str
    schema_version: int
    sent_at_ms: int
    payload_sha256: bytes
    event_count: int
    time_sync: _containers.RepeatedCompositeFieldContainer[TimeSyncSample]
    attestation: AttestationVerdict
    build_environment: str
    def __init__(self, batch_id: _Optional[str] = ..., device_id: _Optional[str] = ..., platform: _Optional[_Union[Platform, str]] = ..., app_version: _Optional[str] = ..., schema_version: _Optional[int] = ..., sent_at_ms: _Optional[int] = ..., payload_sha256: _Optional[bytes] = ..., event_count: _Optional[int] = ..., time_sync: _Optional[_Iterable[_Union[TimeSyncSample, _Mapping]]] = ..., attestation: _Optional[_Union[AttestationVerdict, _Mapping]] = ..., build_environment: _Optional[str] = ...) -> None: ...

class AttestationVerdict(_message.Message):
    __slots__ = ("device_id", "nonce", "verdict", "issued_at_ms", "request_hash", "key_id", "signature")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_HASH_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    nonce: bytes
    verdict: str
    issued_at_ms: int
    request_hash: bytes
    key_id: str
    signature: bytes
    def __init__(self, device_id: _Optional[str] = ..., nonce: _Optional[bytes] = ..., verdict: _Optional[str] = ..., issued_at_ms: _Optional[int] = ..., request_hash: _Optional[bytes] = ..., key_id: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[CallEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[CallEvent, _Mapping]]] = ...) -> None: ...

class CallEvent(_message.Message):
    __slots__ = ("event_id", "call_id", "event_type", "event_ms", "msisdn", "imei", "account_id", "src_ip", "dst_ip", "network_type", "signal_metric", "signal_value", "latitude", "longitude", "country_code", "carrier_mccmnc", "duration_ms", "failure_reason", "callee_msisdn", "telemetry_level", "diagnostics_opt_out", "bytes_sent", "bytes_received", "mos", "jitter_ms", "quality_samples")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    EVENT_MS_FIELD_NUMBER: _ClassVar[int]
    MSISDN_FIELD_NUMBER: _ClassVar[int]
    IMEI_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SRC_IP_FIELD_NUMBER: _ClassVar[int]
    DST_IP_FIELD_NUMBER: _ClassVar[int]
    NETWORK_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_METRIC_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_CODE_FIELD_NUMBER: _ClassVar[int]
    CARRIER_MCCMNC_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    CALLEE_MSISDN_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSTICS_OPT_OUT_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    MOS_FIELD_NUMBER: _ClassVar[int]
    JITTER_MS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    event_type: EventType
    event_ms: int
    msisdn: str
    imei: str
    account_id: str
    src_ip: str
    dst_ip: str
    network_type: NetworkType
    signal_metric: str
    signal_value: float
    latitude: float
    longitude: float
    country_code: str
    carrier_mccmnc: str
    duration_ms: int
    failure_reason: str
    callee_msisdn: str
    telemetry_level: str
    diagnostics_opt_out: bool
    bytes_sent: int
    bytes_received: int
    mos: float
    jitter_ms: int
    quality_samples: int
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., event_type: _Optional[_Union[EventType, str]] = ..., event_ms: _Optional[int] = ..., msisdn: _Optional[str] = ..., imei: _Optional[str] = ..., account_id: _Optional[str] = ..., src_ip: _Optional[str] = ..., dst_ip: _Optional[str] = ..., network_type: _Optional[_Union[NetworkType, str]] = ..., signal_metric: _Optional[str] = ..., signal_value: _Optional[float] = ..., latitude: _Optional[float] = ..., longitude: _Optional[float] = ..., country_code: _Optional[str] = ..., carrier_mccmnc: _Optional[str] = ..., duration_ms: _Optional[int] = ..., failure_reason: _Optional[str] = ..., callee_msisdn: _Optional[str] = ..., telemetry_level: _Optional[str] = ..., diagnostics_opt_out: _Optional[bool] = ..., bytes_sent: _Optional[int] = ..., bytes_received: _Optional[int] = ..., mos: _Optional[float] = ..., jitter_ms: _Optional[int] = ..., quality_samples: _Optional[int] = ...) -> None: ...
