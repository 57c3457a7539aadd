"""Read a TensorFlow checkpoint (the TensorBundle format) without TensorFlow.

A checkpoint ``<prefix>`` is two files: ``<prefix>.index``, a sorted table
(LevelDB's SSTable layout) mapping each variable's name to a small protobuf
(``BundleEntryProto``: dtype, shape, and where its bytes lie), and
``<prefix>.data-00000-of-00001``, the raw little-endian tensor bytes one after
the other. This module reads both: the table's footer, its index block and data
blocks, the protobuf fields it needs, and every tensor, each checked against the
CRC32C the writer stored.

Why our own reader: TensorFlow itself is a 500 MB dependency that musicnn's
checkpoints would need only to be read once (and musicnn's own code needs
TensorFlow 1's graph APIs besides); no maintained package on PyPI reads the
format without it (the TFRecord readers read another format, and the ONNX/TF
converters import TensorFlow). The format is small and stable since TF 1.0
(tensorflow/core/util/tensor_bundle), so a reader of a hundred lines is the
lighter dependency. Only what TensorFlow's ``BundleWriter`` writes is read:
one shard, uncompressed blocks, whole (unsliced) tensors.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48  # two block handles padded to 40 bytes, then the 8-byte magic
_BLOCK_TRAILER = 5  # one byte of compression type, four of masked CRC32C
# TensorFlow's DataType enum (types.proto) -> numpy, for the dtypes a model's variables have.
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64, 10: np.bool_, 19: np.float16}


class CheckpointError(ValueError):
    """The checkpoint is missing, cut short or corrupt; the message names the file."""


def read_checkpoint(prefix: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint at ``prefix`` (the path without ``.index``), by variable name."""
    prefix = str(prefix)
    index_path, data_path = Path(prefix + ".index"), Path(prefix + ".data-00000-of-00001")
    for path in (index_path, data_path):
        if not path.is_file():
            raise CheckpointError(f"{path}: checkpoint file not found")
    entries = _read_table(index_path)
    header = _fields(entries.pop(b"", b""))
    if header.get(1, 1) != 1:
        raise CheckpointError(f"{index_path}: {header[1]} shards; only single-shard checkpoints are read")
    if header.get(2, 0) != 0:
        raise CheckpointError(f"{index_path}: a big-endian checkpoint")
    data = data_path.read_bytes()
    return {name.decode(): _tensor(_fields(value), data, name.decode(), data_path) for name, value in entries.items()}


def _tensor(entry: dict[int, object], data: bytes, name: str, data_path: Path) -> np.ndarray:
    import crc32c

    dtype = _DTYPES.get(entry.get(1, 0))
    if dtype is None:
        raise CheckpointError(f"{data_path}: variable {name} has TensorFlow dtype {entry.get(1)}, which this reader does not read")
    if entry.get(7):
        raise CheckpointError(f"{data_path}: variable {name} is stored in slices, which this reader does not read")
    shape = _shape(entry.get(2, b""))
    offset, size = entry.get(4, 0), entry.get(5, 0)
    raw = data[offset : offset + size]
    if len(raw) != size or size != int(np.prod(shape)) * np.dtype(dtype).itemsize:
        raise CheckpointError(f"{data_path}: variable {name} is cut short ({len(raw)} of {size} bytes)")
    if _mask(crc32c.crc32c(raw)) != entry.get(6, 0):
        raise CheckpointError(f"{data_path}: variable {name} fails its checksum (the file is corrupt)")
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).copy()


def _shape(message: bytes) -> tuple[int, ...]:
    """TensorShapeProto: repeated ``dim`` (field 2), each a Dim whose field 1 is its size."""
    return tuple(_fields(dim).get(1, 0) for dim in _fields(message, repeated={2}).get(2, []))


def _mask(crc: int) -> int:
    """The masked CRC that LevelDB and TensorFlow store (a CRC of data holding CRCs stays meaningful)."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --------------------------------------------------------------------------- the table (LevelDB's SSTable layout)


def _read_table(path: Path) -> dict[bytes, bytes]:
    """Every key and value of an SSTable file: the footer names the index block, whose values name the data blocks."""
    table = path.read_bytes()
    if len(table) < _FOOTER_SIZE or struct.unpack("<Q", table[-8:])[0] != _TABLE_MAGIC:
        raise CheckpointError(f"{path}: not a TensorFlow checkpoint index (no table footer)")
    footer = table[-_FOOTER_SIZE:]
    _, pos = _handle(footer, 0)  # the metaindex block: TensorFlow writes it empty
    (index_offset, index_size), _ = _handle(footer, pos)
    entries = {}
    for handle in _block(table, index_offset, index_size, path).values():
        (offset, size), _ = _handle(handle, 0)
        entries.update(_block(table, offset, size, path))
    return entries


def _handle(buffer: bytes, pos: int) -> tuple[tuple[int, int], int]:
    offset, pos = _varint(buffer, pos)
    size, pos = _varint(buffer, pos)
    return (offset, size), pos


def _block(table: bytes, offset: int, size: int, path: Path) -> dict[bytes, bytes]:
    """One block's entries. Keys are prefix-compressed: each entry says how many bytes it shares with the previous key."""
    import crc32c

    end = offset + size
    if end + _BLOCK_TRAILER > len(table):
        raise CheckpointError(f"{path}: cut short (a block ends past the end of the file)")
    contents, kind, stored_crc = table[offset:end], table[end], struct.unpack("<I", table[end + 1 : end + 5])[0]
    if _mask(crc32c.crc32c(table[offset : end + 1])) != stored_crc:
        raise CheckpointError(f"{path}: a block fails its checksum (the file is corrupt)")
    if kind != 0:
        raise CheckpointError(f"{path}: compressed blocks (type {kind}); TensorFlow writes checkpoints uncompressed")
    n_restarts = struct.unpack("<I", contents[-4:])[0]
    limit = len(contents) - 4 * (n_restarts + 1)
    entries, key, pos = {}, b"", 0
    while pos < limit:
        shared, pos = _varint(contents, pos)
        unshared, pos = _varint(contents, pos)
        value_size, pos = _varint(contents, pos)
        key = key[:shared] + contents[pos : pos + unshared]
        pos += unshared
        entries[key] = contents[pos : pos + value_size]
        pos += value_size
    return entries


# --------------------------------------------------------------------------- protobuf wire format, the parts used


def _varint(buffer: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buffer):
            raise CheckpointError("a varint runs past the end of its buffer (the file is corrupt)")
        byte = buffer[pos]
        result |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(message: bytes, repeated: frozenset[int] | set[int] = frozenset()) -> dict[int, object]:
    """A protobuf message's fields by number: varints as ints, fixed32 as ints, length-delimited as bytes.

    The last value wins, except for the field numbers in ``repeated``, which collect a list.
    """
    fields: dict[int, object] = {}
    pos = 0
    while pos < len(message):
        tag, pos = _varint(message, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(message, pos)
        elif wire == 5:
            value, pos = struct.unpack("<I", message[pos : pos + 4])[0], pos + 4
        elif wire == 1:
            value, pos = struct.unpack("<Q", message[pos : pos + 8])[0], pos + 8
        elif wire == 2:
            size, pos = _varint(message, pos)
            value, pos = message[pos : pos + size], pos + size
        else:
            raise CheckpointError(f"protobuf wire type {wire} is not used by checkpoints (the file is corrupt)")
        if number in repeated:
            fields.setdefault(number, []).append(value)  # type: ignore[union-attr]
        else:
            fields[number] = value
    return fields
