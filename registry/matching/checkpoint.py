"""The match index's checkpoint: a built main segment on disk, mapped read-only at start-up.

Loading tens of millions of hashes from PostgreSQL and indexing them takes about a second per
million; mapping a checkpoint of the built segment and applying the changes made since its
position takes a fraction of that (docs/scaling.md). Every process of a machine that maps the
same file shares one copy of it in the page cache, whether they are gunicorn's forked workers
or separate servers.

The file
--------
A fixed prefix (magic, format version, header length, SHA-256 of the header), a JSON header,
then each array of the segment at an offset aligned to 64 KiB (a page on every platform), in
the machine's byte order. The header holds:

* ``position``: the last change of the change sequence the segment reflects, and ``anchor``, a
  digest of that change's row: a restored database whose sequence reached the same number with
  other changes is told apart;
* ``database``: a digest of the PostgreSQL cluster's system identifier and the database's oid
  (the same on a streaming replica as on its primary), so that another registry's checkpoint,
  or one of a database restored elsewhere, is refused;
* ``code``: a digest of the index's modules (index.py, layout.py, kernels.py), whose code gives
  the arrays their meaning: a checkpoint written by other code is refused, never misread;
* ``segment``: the fields of the Segment dataclass, discovered with ``dataclasses.fields``
  (nested dataclasses such as its layout likewise): each array's dtype, shape, offset and
  CRC-32 of each 64 MiB block, and each scalar's value. A field added to the Segment is saved
  with no change here; a file whose fields differ from the code's is refused.

The file is written to a temporary file in the same directory (mode 0600: it holds hashes),
fsynced, then renamed over the old one, so a reader sees the old file or the new one, whole.
It is mapped with ``mmap`` read-only: the arrays are not writeable, and the index never writes
into them (its removals bitmap and delta are its own, a merge builds a new segment in memory).

A checkpoint holds the hashes of every photo matchable at its position, including photos
withdrawn since: the follower removes them when it applies the change sequence on load, and
rewriting the checkpoint replaces the file (docs/operators.md says how often, and that backups
must not keep it). Nothing logged here names a hash, a digest or a fingerprint.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import logging
import mmap
import os
import struct
import time
import typing
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import DatabaseError, connections, router, transaction
from django.db.models import Max
from django.utils import timezone

from registry.matching import index as index_module
from registry.matching import kernels as kernels_module
from registry.matching import layout as layout_module
from registry.matching.layout import Segment, executor
from registry.models import Change

logger = logging.getLogger(__name__)

MAGIC = b"RMPINDEX"
FORMAT_VERSION = 1
# Magic, format version, header length, SHA-256 of the header.
_PREFIX = struct.Struct("<8sII32s")
# Arrays start at multiples of this: a page of 4, 16 or 64 KiB.
_ALIGN = 1 << 16
# Each array's checksum is kept per block, so that blocks are verified in parallel.
_BLOCK = 1 << 26
# Array kinds a checkpoint may hold: booleans, integers and floats (never Python objects).
_ARRAY_KINDS = frozenset("biuf")
_SCALAR_TYPES = (bool, int, float, str)


class CheckpointError(Exception):
    """A checkpoint that cannot be used. The message says why, without any hash."""


@dataclasses.dataclass(frozen=True, slots=True)
class Checkpoint:
    """A checkpoint read from disk: its segment (arrays mapped read-only) and its header."""

    segment: Segment
    position: int
    anchor: str
    database: str
    code: str
    written_at: float
    size: int


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


def _blocks(data: memoryview) -> list[memoryview]:
    return [data[start : start + _BLOCK] for start in range(0, len(data), _BLOCK)] or [data]


def _checksums(data: memoryview) -> list[int]:
    """CRC-32 of each block, computed on every core (zlib releases the GIL)."""
    return list(executor().map(zlib.crc32, _blocks(data)))


def _bytes_of(array: np.ndarray[Any, Any]) -> memoryview:
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8).data


def index_code_digest() -> str:
    """A digest of the modules that give a segment's arrays their meaning."""
    digest = hashlib.sha256()
    for module in (index_module, layout_module, kernels_module):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()


# --- A dataclass as a tree of arrays and scalars ------------------------------------------------


def _flatten(
    instance: Any, name: str, arrays: list[tuple[str, np.ndarray[Any, Any]]]
) -> dict[str, Any]:
    """The header's description of a dataclass instance; its arrays are appended to ``arrays``."""
    tree: dict[str, Any] = {}
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        path = f"{name}.{field.name}"
        if isinstance(value, np.ndarray):
            tree[field.name] = {"array": len(arrays)}
            arrays.append((path, value))
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            tree[field.name] = {"fields": _flatten(value, path, arrays)}
        elif isinstance(value, np.generic):
            tree[field.name] = {"value": value.item()}
        elif value is None or isinstance(value, _SCALAR_TYPES):
            tree[field.name] = {"value": value}
        else:
            raise TypeError(f"{path}: a {type(value).__name__} cannot be saved in a checkpoint")
    return tree


def _nested_dataclass(owner: type, field: str) -> type | None:
    """The dataclass a field of ``owner`` is annotated with (``_Layout | None``: ``_Layout``)."""
    hint = typing.get_type_hints(owner)[field]
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return candidate
    return None


def _rebuild(cls: type, tree: dict[str, Any], arrays: list[np.ndarray[Any, Any]]) -> Any:
    names = [field.name for field in dataclasses.fields(cls)]
    if not isinstance(tree, dict) or sorted(tree) != sorted(names):
        raise CheckpointError(f"its {cls.__name__} fields differ from this version's")
    values: dict[str, Any] = {}
    for name in names:
        node = tree[name]
        if "array" in node:
            values[name] = arrays[node["array"]]
        elif "fields" in node:
            nested = _nested_dataclass(cls, name)
            if nested is None:
                raise CheckpointError(f"its {cls.__name__}.{name} is not a dataclass here")
            values[name] = _rebuild(nested, node["fields"], arrays)
        else:
            values[name] = node["value"]
    return cls(**values)


# --- Writing and reading -----------------------------------------------------------------------


@contextmanager
def _directory_locked(directory: Path) -> Iterator[None]:
    """One writer at a time in ``directory`` (a timer's run and an operator's, say)."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def checkpoint_write(
    path: str | os.PathLike[str], segment: Segment, *, position: int, anchor: str, database: str
) -> int:
    """Write ``segment`` as the checkpoint at ``path``, atomically; return the file's size.

    ``position`` is the last change the segment reflects, ``anchor`` the digest of that change
    (``change_anchor``) and ``database`` the database's fingerprint (``database_fingerprint``).
    The directory must exist. A temporary file left there by a writer that died is removed.
    """
    target = Path(path)
    arrays: list[tuple[str, np.ndarray[Any, Any]]] = []
    tree = _flatten(segment, "segment", arrays)
    described, offset = [], 0
    for name, array in arrays:
        data = _bytes_of(array)
        described.append(
            {
                "name": name,
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "offset": offset,
                "nbytes": len(data),
                "crc32": _checksums(data),
            }
        )
        offset = _aligned(offset + len(data))
    header = json.dumps(
        {
            "position": position,
            "anchor": anchor,
            "database": database,
            "code": index_code_digest(),
            "written_at": time.time(),
            "hashes": len(segment),
            "arrays": described,
            "segment": tree,
        },
        separators=(",", ":"),
    ).encode()
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header), hashlib.sha256(header).digest())
    data_start = _aligned(_PREFIX.size + len(header))
    with _directory_locked(target.parent):
        for stale in target.parent.glob(f".{target.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        temporary = target.parent / f".{target.name}.{os.getpid()}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as file:
                os.fchmod(file.fileno(), 0o600)  # whatever the umask
                file.write(prefix + header)
                for (_, array), entry in zip(arrays, described, strict=True):
                    file.write(b"\0" * (data_start + entry["offset"] - file.tell()))
                    file.write(_bytes_of(array))
                # To the end of the last array's pages: an empty array's offset is in the file.
                file.write(b"\0" * (data_start + offset - file.tell()))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
    return target.stat().st_size


def _header(mapping: mmap.mmap, size: int) -> tuple[dict[str, Any], int]:
    """The checked header and where the arrays start."""
    if size < _PREFIX.size:
        raise CheckpointError("it is truncated")
    magic, version, length, digest = _PREFIX.unpack_from(mapping)
    if magic != MAGIC:
        raise CheckpointError("it is not an index checkpoint")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"its format version is {version}, this one reads {FORMAT_VERSION}")
    if _PREFIX.size + length > size:
        raise CheckpointError("it is truncated")
    raw = mapping[_PREFIX.size : _PREFIX.size + length]
    if hashlib.sha256(raw).digest() != digest:
        raise CheckpointError("its header fails its checksum")
    try:
        header = json.loads(raw)
    except ValueError as error:
        raise CheckpointError("its header is not readable") from error
    if not isinstance(header, dict):
        raise CheckpointError("its header is not readable")
    return header, _aligned(_PREFIX.size + length)


def _arrays(
    mapping: mmap.mmap, size: int, entries: list[dict[str, Any]], data_start: int
) -> list[np.ndarray[Any, Any]]:
    """Each array, checked against its size and checksums, as a read-only view of the mapping."""
    arrays: list[np.ndarray[Any, Any]] = []
    checks: list[tuple[memoryview, int]] = []
    whole = memoryview(mapping)
    for entry in entries:
        dtype = np.dtype(entry["dtype"])
        if dtype.kind not in _ARRAY_KINDS or dtype.hasobject:
            raise CheckpointError(f"its array {entry['name']} has a type it may not hold")
        if not dtype.isnative:
            raise CheckpointError("it was written on a machine of another byte order")
        start, nbytes = data_start + int(entry["offset"]), int(entry["nbytes"])
        shape = tuple(int(n) for n in entry["shape"])
        if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != nbytes:
            raise CheckpointError(f"its array {entry['name']} has an inconsistent size")
        if start < data_start or start % _ALIGN or start + nbytes > size:
            raise CheckpointError("it is truncated")
        data = whole[start : start + nbytes]
        blocks = _blocks(data)
        if len(blocks) != len(entry["crc32"]):
            raise CheckpointError(f"its array {entry['name']} has an inconsistent size")
        checks.extend(zip(blocks, entry["crc32"], strict=True))
        arrays.append(np.frombuffer(data, dtype=dtype).reshape(shape))
    # Reading every page once also brings the file into the page cache before the first query.
    found = executor().map(zlib.crc32, [block for block, _ in checks])
    if any(crc != expected for crc, (_, expected) in zip(found, checks, strict=True)):
        raise CheckpointError("its data fails its checksums")
    return arrays


def checkpoint_read(path: str | os.PathLike[str]) -> Checkpoint:
    """Map the checkpoint at ``path`` and check it; raise CheckpointError if it is unusable.

    Checks the file alone (magic, version, checksums, the code that wrote it, the segment's
    fields); ``checkpoint_refusal`` checks it against the database.
    """
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size < _PREFIX.size:
                raise CheckpointError("it is truncated")
            # The mapping keeps its own reference to the file once this one is closed.
            mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError as error:
        raise CheckpointError("there is no such file") from error
    except OSError as error:
        raise CheckpointError(f"it cannot be read ({error.strerror})") from error
    if hasattr(mmap, "MADV_WILLNEED"):  # Linux and the BSDs: read ahead from now on.
        mapping.madvise(mmap.MADV_WILLNEED)
    header, data_start = _header(mapping, size)
    try:
        if header["code"] != index_code_digest():
            raise CheckpointError("it was written by another version of the index code")
        arrays = _arrays(mapping, size, header["arrays"], data_start)
        segment = _rebuild(Segment, header["segment"], arrays)
        return Checkpoint(
            segment=segment,
            position=int(header["position"]),
            anchor=str(header["anchor"]),
            database=str(header["database"]),
            code=str(header["code"]),
            written_at=float(header["written_at"]),
            size=size,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError("its header is not readable") from error


# --- Against the database ----------------------------------------------------------------------


def database_fingerprint() -> str:
    """A digest naming the database that reads of the change sequence go to (the replica,
    inside ``replica_reads()``): its cluster's system identifier and the database's oid, which
    a streaming replica shares with its primary. Empty when the database cannot say."""
    alias = router.db_for_read(Change)
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return hashlib.sha256(
            f"{connection.vendor}:{connection.settings_dict['NAME']}".encode()
        ).hexdigest()
    try:
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            cursor.execute(
                "SELECT (SELECT system_identifier FROM pg_control_system()), "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            system, database = cursor.fetchone()
    except DatabaseError:  # A managed server may not let us read the control data.
        return ""
    return hashlib.sha256(f"postgresql:{system}:{database}".encode()).hexdigest()


def change_anchor(position: int) -> str:
    """A digest of change number ``position`` (empty for 0, or if there is no such change)."""
    row = Change.objects.filter(pk=position).values_list("kind", "image_id", "created_at").first()
    if row is None:
        return ""
    kind, image, created_at = row
    return hashlib.sha256(
        f"{position}:{kind}:{image}:{created_at.isoformat()}".encode()
    ).hexdigest()


def checkpoint_refusal(checkpoint: Checkpoint) -> str | None:
    """Why this database cannot follow on from ``checkpoint``, or None if it can."""
    database = database_fingerprint()
    if checkpoint.database != database:
        return "it was written from another database"
    head = Change.objects.aggregate(head=Max("id"))["head"] or 0
    if checkpoint.position > head:
        return f"its position (change {checkpoint.position}) is ahead of the database's ({head})"
    if change_anchor(checkpoint.position) != checkpoint.anchor:
        return f"change {checkpoint.position} of the database is not the one it reflects"
    # The change sequence is never pruned, but the hash values of withdrawn photos are deleted
    # TOMBSTONE_RETENTION_DAYS after the withdrawal (registry.services.retention), and without
    # them a withdrawal cannot be applied to the checkpoint: a day's margin covers a purge
    # running while this process loads.
    horizon = timezone.now() - dt.timedelta(days=settings.TOMBSTONE_RETENTION_DAYS - 1)
    purged = Change.objects.filter(
        id__gt=checkpoint.position, kind=Change.Kind.WITHDRAWN, created_at__lt=horizon
    )
    if purged.exists():
        return "it is older than the withdrawn photos' hashes are kept"
    return None


def checkpoint_load(path: str | os.PathLike[str]) -> Checkpoint | None:
    """The checkpoint at ``path`` if this database can follow on from it; else None, with a
    warning saying why (the caller then loads from the database)."""
    try:
        checkpoint = checkpoint_read(path)
    except CheckpointError as error:
        reason: str | None = str(error)
    else:
        reason = checkpoint_refusal(checkpoint)
        if reason is None:
            return checkpoint
    logger.warning(
        "match index checkpoint %s not used: %s; loading from the database instead", path, reason
    )
    return None
