"""Locations: plain paths and pyarrow filesystem URIs, one set of helpers for both.

``cache_dir`` and every source path may be a plain path (a local disk or an
NFS mount) or a pyarrow filesystem URI (``s3://bucket/music``, ``gs://...``,
``hdfs://...``, ``file:///abs/path``), so that extraction on a cluster reads
the collection from shared storage and writes the store where every node
finds it. :func:`resolve` is the one place where a location becomes a pyarrow
filesystem; the rest of the code passes location strings around.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.fs as pafs

from musicvae.config.sections import expand_path


def is_uri(location: str | Path) -> bool:
    """A filesystem URI (``s3://``, ``file://``, ...) rather than a plain path: the same test as sweep.py's storage paths."""
    return "://" in str(location)


def absolute(location: str | Path) -> str:
    """A location that means the same on every Ray worker: a URI as given, a plain path expanded and absolute."""
    return str(location) if is_uri(location) else str(expand_path(str(location)).resolve())


def resolve(location: str | Path) -> tuple[pafs.FileSystem, str]:
    """The filesystem that holds ``location`` and the path inside it: the one place locations become filesystems.

    Plain paths (an NFS mount is one) stay on the local filesystem, with ~ and
    $VARS expanded as everywhere in a sweep file. URIs go through
    ``FileSystem.from_uri``, so everything pyarrow documents works, query
    options included (``s3://bucket/music?region=eu-west-1``,
    ``?endpoint_override=host:9000&scheme=http`` for MinIO). Credentials come
    from the usual places (AWS_* variables, an instance role): a
    ``user:secret@`` in the URI would be copied into every manifest.
    """
    if is_uri(location):
        return pafs.FileSystem.from_uri(str(location))
    return pafs.LocalFileSystem(), absolute(location)


def open_input(location: str | Path) -> pa.NativeFile:
    """A seekable binary file for reading a plain path or a URI (FileNotFoundError if it is not there)."""
    fs, path = resolve(location)
    return fs.open_input_file(path)


def join(location: str | Path, *parts: str) -> str:
    """A location below ``location`` (parts may hold "/"); in a URI they are percent-encoded and the query is kept."""
    if not is_uri(location):
        return str(expand_path(str(location)).joinpath(*parts))
    url = urlsplit(str(location))
    path = posixpath.normpath("/".join([url.path.rstrip("/"), *(quote(part) for part in parts)]))
    return urlunsplit(url._replace(path=path))


def parent(location: str | Path) -> str:
    """The folder that holds ``location``."""
    if not is_uri(location):
        return str(expand_path(str(location)).parent)
    url = urlsplit(str(location))
    return urlunsplit(url._replace(path=posixpath.dirname(url.path.rstrip("/"))))


def fingerprint(location: str) -> list[int] | None:
    """(size, mtime in ns) of a file, or None if it cannot be stat'ed.

    On an object store the mtime is the object's Last-Modified, which every
    upload renews (to the second), so a replaced file is noticed as on a disk.
    """
    if not is_uri(location):  # the common case, without building a filesystem per file
        try:
            stat = os.stat(location)
        except OSError:
            return None
        return [stat.st_size, stat.st_mtime_ns]
    try:
        fs, path = resolve(location)
        info = fs.get_file_info(path)
    except OSError:
        return None
    return [info.size, info.mtime_ns] if info.type == pafs.FileType.File else None


# ---------------------------------------------------------------- a sweep run's folder

SWEEP_FILE = "musicvae-sweep.yaml"  # the sweep file, kept beside Tune's state so --resume needs nothing else
RUN_FILE = "musicvae-run.json"  # where the sweep's MLflow parent run lives
RUN_SUFFIX = re.compile(r"-\d{8}-\d{6}$")


def storage_root(path: str) -> str:
    """Tune's storage as Tune takes it: a URI (s3://, gs://, ...) as is, a folder resolved."""
    return absolute(path)


def write_text(uri: str, text: str) -> None:
    fs, path = resolve(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as stream:
        stream.write(text.encode())


def read_text(uri: str) -> str:
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as stream:
        return stream.read().decode()


def find_run(storage: str, name: str) -> str:
    """The Tune experiment to resume: ``name`` is a run folder (``quickstart-20261125-140102``) or a sweep name (its latest run)."""
    import pyarrow.fs

    root = storage_root(storage)
    fs, path = resolve(root)
    try:
        folders = [info.base_name for info in fs.get_file_info(pyarrow.fs.FileSelector(path)) if info.type == pyarrow.fs.FileType.Directory]
    except (FileNotFoundError, OSError):
        folders = []
    runs = [f for f in folders if fs.get_file_info(f"{path}/{f}/{SWEEP_FILE}").type == pyarrow.fs.FileType.File]  # musicvae's, not any Tune run
    matches = sorted(f for f in runs if name in (f, RUN_SUFFIX.sub("", f)))  # the timestamp suffix sorts by time
    if not matches:
        known = sorted({RUN_SUFFIX.sub("", f) for f in runs})
        raise ValueError(f"no sweep run named '{name}' in {root} (sweeps there: {', '.join(known) or 'none'})")
    return f"{root.rstrip('/')}/{matches[-1]}"


def load_run_sweep(run_path: str) -> str:
    """The sweep file a run was started with (to resume it without the original file)."""
    return read_text(f"{run_path}/{SWEEP_FILE}")
