import os

import pyarrow as pa
import pytest

from fashiongen import storage


@pytest.fixture(params=["local", "file", "s3"])
def base_uri(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "lake")
    if request.param == "file":
        return f"file://{tmp_path}/lake"
    request.getfixturevalue("s3_server")
    return f"s3://lake/storage-test/{os.urandom(4).hex()}"


def test_round_trip_list_delete(base_uri):
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    storage.write_table(table, storage.join(base_uri, "t", "part.parquet"))
    storage.write_bytes(storage.join(base_uri, "blob.bin"), b"\x00payload")
    assert storage.read_table(storage.join(base_uri, "t")).equals(table)
    assert storage.read_bytes(storage.join(base_uri, "blob.bin")) == b"\x00payload"
    assert storage.list_dir(base_uri) == ["blob.bin", "t"]
    assert storage.exists(storage.join(base_uri, "t", "part.parquet"))
    storage.delete(storage.join(base_uri, "t"))
    assert not storage.exists(storage.join(base_uri, "t", "part.parquet"))
    assert storage.list_dir(storage.join(base_uri, "nothing-here")) == []


def test_missing_object_is_a_clear_error(base_uri):
    with pytest.raises(storage.StorageError, match="does not exist"):
        storage.read_bytes(storage.join(base_uri, "nope"))
    with pytest.raises(storage.StorageError, match="does not exist"):
        storage.read_table(storage.join(base_uri, "nope.parquet"))


def test_local_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    uri = str(tmp_path / "x" / "f.bin")
    storage.write_bytes(uri, b"one")
    storage.write_bytes(uri, b"two")
    assert storage.read_bytes(uri) == b"two"
    assert os.listdir(tmp_path / "x") == ["f.bin"]


def test_unknown_scheme_is_rejected():
    with pytest.raises(storage.StorageError, match="unsupported URI scheme"):
        storage.filesystem("gs://bucket/x")


def test_endpoint_comes_from_environment(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    fs, path = storage.filesystem("s3://bucket/key/")
    assert path == "bucket/key"
    options = fs.__reduce__()[1][0]  # pyarrow ignores AWS_ENDPOINT_URL on its own: we must pass it
    assert options["endpoint_override"] == "127.0.0.1:9" and options["scheme"] == "http"


def test_unreachable_storage_names_the_uri(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(storage.StorageError) as info:
        storage.write_bytes("s3://bucket/k", b"x")
    assert "s3://bucket/k" in str(info.value) and "AWS_ENDPOINT_URL" in str(info.value)
    assert "s3cr3t-value" not in str(info.value)


@pytest.mark.parametrize("host", ["nonexistent-host.invalid:9", "127.0.0.1:9"])
def test_credentials_in_the_endpoint_never_reach_a_message(monkeypatch, host):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://AKIAXXXX:SECRETYYY@{host}")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for operation in (lambda: storage.read_bytes("s3://bucket/k"), lambda: storage.list_dir("s3://bucket/p"),
                      lambda: storage.write_bytes("s3://bucket/k", b"x")):
        with pytest.raises(storage.StorageError) as info:
            operation()
        text = str(info.value)
        assert host.split(":")[0] in text and "AKIAXXXX" not in text and "SECRETYYY" not in text, text


def test_redact_strips_userinfo_from_every_url():
    text = "GET s3://AKIA:SEC@bucket/k via http://user:pw@host:9/x and https://tok@h/ (plain http://h:1)"
    assert storage.redact(text) == "GET s3://bucket/k via http://host:9/x and https://h/ (plain http://h:1)"
