"""Every URI the project reads or writes goes through here: local paths, `file://` and `s3://`.

S3 credentials come from the standard AWS chain (environment, profile, instance role); they are never
logged or written. `AWS_ENDPOINT_URL` (e.g. a moto server or MinIO) is honoured for every client,
including pyarrow, which ignores that variable on its own, so we pass it as `endpoint_override`.
"""
from __future__ import annotations

import io
import os
import re
import uuid
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from fashiongen.errors import FashiongenError


class StorageError(FashiongenError, RuntimeError):
    """A URI that cannot be read or written; the message names the URI and what to check, never a credential
    (every message goes through `redact`)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'\"]*@")


def endpoint_url() -> str | None:
    """AWS_ENDPOINT_URL(_S3) without any user:password part: S3 clients sign requests with the AWS credentials,
    and curl would read `KEY:SECRET@host` as a host named KEY (and print it)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return redact(endpoint) if endpoint else None


def redact(text: str) -> str:
    """`text` with the user:password part of every URL in it removed: for every URI or error text in a message."""
    return _USERINFO.sub(r"\g<scheme>", text)


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path inside it) for a URI. Paths carry no scheme."""
    if is_s3(uri):
        kwargs: dict = {"region": region()}
        endpoint = endpoint_url()
        if endpoint:
            parsed = urlparse(endpoint)
            kwargs["endpoint_override"] = parsed.netloc or parsed.path
            kwargs["scheme"] = parsed.scheme or "https"
        return pafs.S3FileSystem(**kwargs), uri[len("s3://"):].rstrip("/")
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    if "://" in uri:
        raise StorageError(f"unsupported URI scheme in {uri!r}: use a local path, file:// or s3://")
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def fsspec_filesystem(uri: str):
    """An fsspec filesystem for the URI (for DuckDB `register_filesystem`, Polars and friends)."""
    if is_s3(uri):
        import s3fs

        client_kwargs = {"region_name": region()}
        if endpoint_url():
            client_kwargs["endpoint_url"] = endpoint_url()
        return s3fs.S3FileSystem(client_kwargs=client_kwargs)
    import fsspec

    return fsspec.filesystem("file")


def join(uri: str, *parts: str) -> str:
    """Join path parts onto a URI with '/' (works for local paths and s3://)."""
    out = uri.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def local_path(uri: str) -> str | None:
    """The local filesystem path of a URI, or None when it is remote."""
    if is_s3(uri):
        return None
    return filesystem(uri)[1]


def _bucket(uri: str) -> str:
    return uri[len("s3://"):].split("/", 1)[0]


def _endpoint_label() -> str:
    """The S3 endpoint in use, without any user:password part, for error messages."""
    endpoint = endpoint_url()
    if not endpoint:
        return f"AWS S3 in {region()} (no AWS_ENDPOINT_URL set)"
    return f"{redact(endpoint)} (AWS_ENDPOINT_URL)"


def _wrap(uri: str, exc: Exception) -> StorageError:
    """A StorageError naming the URI, the cause and what to check; never the credentials."""
    detail = f"{exc.__class__.__name__}: {exc}"
    if not is_s3(uri):
        return StorageError(f"cannot access {uri!r}: {detail} (check the path exists and is writable)")
    text = str(exc)
    if "NETWORK_CONNECTION" in text or "curlCode" in text:
        hint = (f"cannot reach the S3 endpoint {_endpoint_label()}: check the endpoint URL, that the service is "
                "up and that this machine can reach it")
    elif "NO_SUCH_BUCKET" in text or "NoSuchBucket" in text:
        hint = f"bucket {_bucket(uri)!r} does not exist at {_endpoint_label()}: create it or fix the URI"
    elif "ACCESS_DENIED" in text or "AccessDenied" in text or "InvalidAccessKeyId" in text \
            or "SignatureDoesNotMatch" in text:
        hint = ("access denied: check the AWS credentials (AWS_ACCESS_KEY_ID / AWS_PROFILE / instance role) and "
                "the bucket policy")
    else:
        hint = f"check the bucket exists, the AWS credentials and the endpoint {_endpoint_label()}"
    return StorageError(f"cannot access {uri!r}: {hint} ({detail})")


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    try:
        return fs.get_file_info(path).type != pafs.FileType.NotFound
    except OSError as exc:
        raise _wrap(uri, exc) from None


def makedirs(uri: str) -> None:
    fs, path = filesystem(uri)
    try:
        fs.create_dir(path, recursive=True)
    except OSError as exc:
        raise _wrap(uri, exc) from None


def list_dir(uri: str) -> list[str]:
    """Names directly under a URI (files and folders), sorted; empty when it does not exist."""
    fs, path = filesystem(uri)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        if not infos and is_s3(uri) and fs.get_file_info(_bucket(uri)).type == pafs.FileType.NotFound:
            # S3 lists nothing under a missing bucket too: say so rather than "empty".
            raise StorageError(f"cannot list {uri!r}: bucket {_bucket(uri)!r} does not exist at "
                               f"{_endpoint_label()}: create it or fix the URI")
    except OSError as exc:
        raise _wrap(uri, exc) from None
    return sorted(info.base_name for info in infos)


def delete(uri: str) -> None:
    """Delete a file or a whole folder; a missing URI is not an error."""
    fs, path = filesystem(uri)
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            fs.delete_dir(path)
        elif info.type == pafs.FileType.File:
            fs.delete_file(path)
    except OSError as exc:
        raise _wrap(uri, exc) from None


def list_files(uri: str) -> list[str]:
    """Paths (relative to `uri`) of every file under it, recursively, sorted; [] when it does not exist."""
    fs, base = filesystem(uri)
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except OSError as exc:
        raise _wrap(uri, exc) from None
    return sorted(i.path[len(base) + 1:] for i in infos if i.type == pafs.FileType.File)


def copy_tree(src: str, dst: str, last: str = "") -> None:
    """Copy every file under `src` to the same relative path under `dst` (files written atomically), the file
    named `last` (relative to `src`) after all the others."""
    for name in sorted(list_files(src), key=lambda n: n == last):
        write_bytes(join(dst, name), read_bytes(join(src, name)))


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole object atomically: readers see the old bytes or the new, never a partial file."""
    fs, path = filesystem(uri)
    try:
        if is_s3(uri):  # a single PUT is atomic on S3
            with fs.open_output_stream(path) as out:
                out.write(data)
            return
        fs.create_dir(os.path.dirname(path), recursive=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise _wrap(uri, exc) from None


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    try:
        with fs.open_input_stream(path) as src:
            return src.read()
    except FileNotFoundError:
        raise StorageError(f"{uri!r} does not exist") from None
    except OSError as exc:
        raise _wrap(uri, exc) from None


def write_table(table: pa.Table, uri: str, **parquet_kwargs) -> None:
    """Write one Parquet file atomically (zstd by default)."""
    buf = io.BytesIO()
    parquet_kwargs.setdefault("compression", "zstd")
    pq.write_table(table, buf, **parquet_kwargs)
    write_bytes(uri, buf.getvalue())


def read_table(uri: str, columns: list[str] | None = None) -> pa.Table:
    """Read a Parquet file or a folder of Parquet files (Hive partitions become columns)."""
    fs, path = filesystem(uri)
    try:
        return pq.read_table(path, filesystem=fs, columns=columns)
    except FileNotFoundError:
        raise StorageError(f"{uri!r} does not exist") from None
    except OSError as exc:
        raise _wrap(uri, exc) from None
