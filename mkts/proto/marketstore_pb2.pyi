from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN: _ClassVar[DataType]
    FLOAT32: _ClassVar[DataType]
    INT32: _ClassVar[DataType]
    FLOAT64: _ClassVar[DataType]
    INT64: _ClassVar[DataType]
    EPOCH: _ClassVar[DataType]
    BYTE: _ClassVar[DataType]
    BOOL: _ClassVar[DataType]
    NONE: _ClassVar[DataType]
    STRING: _ClassVar[DataType]
    INT16: _ClassVar[DataType]
    UINT8: _ClassVar[DataType]
    UINT16: _ClassVar[DataType]
    UINT32: _ClassVar[DataType]
    UINT64: _ClassVar[DataType]
    STRING16: _ClassVar[DataType]
UNKNOWN: DataType
FLOAT32: DataType
INT32: DataType
FLOAT64: DataType
INT64: DataType
EPOCH: DataType
BYTE: DataType
BOOL: DataType
NONE: DataType
STRING: DataType
INT16: DataType
UINT8: DataType
UINT16: DataType
UINT32: DataType
UINT64: DataType
STRING16: DataType

class DataShape(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class NumpyDataset(_message.Message):
    __slots__ = ("column_types", "column_names", "column_data", "length", "data_shapes")
    COLUMN_TYPES_FIELD_NUMBER: _ClassVar[int]
    COLUMN_NAMES_FIELD_NUMBER: _ClassVar[int]
    COLUMN_DATA_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    DATA_SHAPES_FIELD_NUMBER: _ClassVar[int]
    column_types: _containers.RepeatedScalarFieldContainer[str]
    column_names: _containers.RepeatedScalarFieldContainer[str]
    column_data: _containers.RepeatedScalarFieldContainer[bytes]
    length: int
    data_shapes: _containers.RepeatedCompositeFieldContainer[DataShape]
    def __init__(self, column_types: _Optional[_Iterable[str]] = ..., column_names: _Optional[_Iterable[str]] = ..., column_data: _Optional[_Iterable[bytes]] = ..., length: _Optional[int] = ..., data_shapes: _Optional[_Iterable[_Union[DataShape, _Mapping]]] = ...) -> None: ...

class NumpyMultiDataset(_message.Message):
    __slots__ = ("data", "start_index", "lengths")
    class StartIndexEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class LengthsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DATA_FIELD_NUMBER: _ClassVar[int]
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    LENGTHS_FIELD_NUMBER: _ClassVar[int]
    data: NumpyDataset
    start_index: _containers.ScalarMap[str, int]
    lengths: _containers.ScalarMap[str, int]
    def __init__(self, data: _Optional[_Union[NumpyDataset, _Mapping]] = ..., start_index: _Optional[_Mapping[str, int]] = ..., lengths: _Optional[_Mapping[str, int]] = ...) -> None: ...

class CreateRequest(_message.Message):
    __slots__ = ("key", "data_shapes", "row_type")
    KEY_FIELD_NUMBER: _ClassVar[int]
    DATA_SHAPES_FIELD_NUMBER: _ClassVar[int]
    ROW_TYPE_FIELD_NUMBER: _ClassVar[int]
    key: str
    data_shapes: _containers.RepeatedCompositeFieldContainer[DataShape]
    row_type: str
    def __init__(self, key: _Optional[str] = ..., data_shapes: _Optional[_Iterable[_Union[DataShape, _Mapping]]] = ..., row_type: _Optional[str] = ...) -> None: ...

class MultiCreateRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[CreateRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[CreateRequest, _Mapping]]] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("is_sql_statement", "sql_statement", "destination", "key_category", "epoch_start", "epoch_start_nanos", "epoch_end", "epoch_end_nanos", "limit_record_count", "limit_from_start", "columns", "functions")
    IS_SQL_STATEMENT_FIELD_NUMBER: _ClassVar[int]
    SQL_STATEMENT_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    KEY_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    EPOCH_START_FIELD_NUMBER: _ClassVar[int]
    EPOCH_START_NANOS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_END_FIELD_NUMBER: _ClassVar[int]
    EPOCH_END_NANOS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_RECORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FROM_START_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    is_sql_statement: bool
    sql_statement: str
    destination: str
    key_category: str
    epoch_start: int
    epoch_start_nanos: int
    epoch_end: int
    epoch_end_nanos: int
    limit_record_count: int
    limit_from_start: bool
    columns: _containers.RepeatedScalarFieldContainer[str]
    functions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, is_sql_statement: _Optional[bool] = ..., sql_statement: _Optional[str] = ..., destination: _Optional[str] = ..., key_category: _Optional[str] = ..., epoch_start: _Optional[int] = ..., epoch_start_nanos: _Optional[int] = ..., epoch_end: _Optional[int] = ..., epoch_end_nanos: _Optional[int] = ..., limit_record_count: _Optional[int] = ..., limit_from_start: _Optional[bool] = ..., columns: _Optional[_Iterable[str]] = ..., functions: _Optional[_Iterable[str]] = ...) -> None: ...

class MultiQueryRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[QueryRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[QueryRequest, _Mapping]]] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: NumpyMultiDataset
    def __init__(self, result: _Optional[_Union[NumpyMultiDataset, _Mapping]] = ...) -> None: ...

class MultiQueryResponse(_message.Message):
    __slots__ = ("responses", "version", "timezone")
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[QueryResponse]
    version: str
    timezone: str
    def __init__(self, responses: _Optional[_Iterable[_Union[QueryResponse, _Mapping]]] = ..., version: _Optional[str] = ..., timezone: _Optional[str] = ...) -> None: ...

class WriteRequest(_message.Message):
    __slots__ = ("data", "is_variable_length")
    DATA_FIELD_NUMBER: _ClassVar[int]
    IS_VARIABLE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    data: NumpyMultiDataset
    is_variable_length: bool
    def __init__(self, data: _Optional[_Union[NumpyMultiDataset, _Mapping]] = ..., is_variable_length: _Optional[bool] = ...) -> None: ...

class MultiWriteRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[WriteRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[WriteRequest, _Mapping]]] = ...) -> None: ...

class ServerResponse(_message.Message):
    __slots__ = ("error", "version")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    error: str
    version: str
    def __init__(self, error: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class MultiServerResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[ServerResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[ServerResponse, _Mapping]]] = ...) -> None: ...

class KeyRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class MultiKeyRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[KeyRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[KeyRequest, _Mapping]]] = ...) -> None: ...

class ListSymbolsRequest(_message.Message):
    __slots__ = ("format",)
    class Format(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SYMBOL: _ClassVar[ListSymbolsRequest.Format]
        TIME_BUCKET_KEY: _ClassVar[ListSymbolsRequest.Format]
    SYMBOL: ListSymbolsRequest.Format
    TIME_BUCKET_KEY: ListSymbolsRequest.Format
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    format: ListSymbolsRequest.Format
    def __init__(self, format: _Optional[_Union[ListSymbolsRequest.Format, str]] = ...) -> None: ...

class ListSymbolsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, results: _Optional[_Iterable[str]] = ...) -> None: ...

class ServerVersionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...
