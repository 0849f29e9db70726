"""The MongoDB content store against a real wire-protocol server (SecantusDB, see mongo_peer)."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid

import gridfs
import pymongo
import pytest

from logmail.errors import ConfigError, NotFoundError, StorageUnavailableError
from logmail.store.content import CODEC_STORED, CODEC_ZSTD
from logmail.store.content_mongo import MongoContentStore, redact_url

try:
    from tests.mongo_peer import free_port, start_mongo_peer
except ImportError:  # run as `pytest` rather than `python -m pytest`: tests/ itself is on the path
    from mongo_peer import free_port, start_mongo_peer

pytestmark = pytest.mark.mongodb

KiB = 1024
THRESHOLD = 64 * KiB
GRIDFS_CHUNK = 255 * KiB  # the driver's default chunk size
TEXT = b"".join(b"Received: from host%d.example.org by mx.example.net; line %d\r\n" % (i % 7, i)
                for i in range(400))


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    # One server for the module (start-up costs most of a second); each test has its own database.
    with start_mongo_peer(tmp_path_factory.mktemp("mongo")) as p:
        yield p


@pytest.fixture
def db_name() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


@pytest.fixture
def store(peer, db_name):
    s = MongoContentStore(peer.url_for(db_name, serverSelectionTimeoutMS=2000), gridfs_threshold=THRESHOLD)
    yield s
    s.close()


@pytest.fixture
def raw(peer, db_name):
    """The test database through a plain client, to see what the store really left behind."""
    client = pymongo.MongoClient(peer.url, serverSelectionTimeoutMS=5000)
    yield client[db_name]
    client.close()


def leftovers(db) -> dict[str, int]:
    return {name: db[name].count_documents({}) for name in ("blobs", "content.files", "content.chunks")}


def test_small_blobs_round_trip_byte_exact(store, raw):
    blobs = {
        "raw/empty": b"",
        "raw/short": b"Subject: hi\r\n\r\nhello\r\n",
        "body/text": TEXT,
        "att/random": os.urandom(20 * KiB),
        "att/allbytes": bytes(range(256)) * 40,
    }
    store.put_many(blobs.items())
    for key, data in blobs.items():
        assert store.get(key) == data
    text = raw.blobs.find_one({"_id": "body/text"})
    assert text["codec"] == CODEC_ZSTD and text["size"] == len(TEXT) and text["stored"] == len(text["data"])
    assert text["stored"] < len(TEXT) / 4
    assert "gridfs" not in text and text["created_at"] is not None
    random = raw.blobs.find_one({"_id": "att/random"})
    assert random["codec"] == CODEC_STORED and bytes(random["data"]) == blobs["att/random"]
    assert leftovers(raw) == {"blobs": 5, "content.files": 0, "content.chunks": 0}


def test_large_blob_goes_to_gridfs_and_round_trips(store, raw):
    big = os.urandom(1024 * KiB)
    squeezable = TEXT * 100  # 2.4 MB that compresses below the threshold: stays a document
    store.put_many([("att/big", big), ("att/squeezable", squeezable)])
    assert store.get("att/big") == big
    assert store.get("att/squeezable") == squeezable

    marker = raw.blobs.find_one({"_id": "att/big"})
    assert marker["gridfs"] is True and "data" not in marker and marker["size"] == len(big)
    files = list(raw["content.files"].find())
    assert [(f["_id"], f["filename"], f["length"]) for f in files] == [(marker["file_id"], "att/big", len(big))]
    assert raw["content.chunks"].count_documents({}) == math.ceil(len(big) / GRIDFS_CHUNK)
    assert "data" in raw.blobs.find_one({"_id": "att/squeezable"})


def test_reput_replaces_both_kinds(store, raw):
    store.put_many([("raw/a", b"first" * 100), ("att/b", os.urandom(200 * KiB))])
    second_small, second_large = b"second" * 100, os.urandom(300 * KiB)
    store.put_many([("raw/a", second_small), ("att/b", second_large)])
    store.put_many([("raw/a", second_small), ("att/b", second_large)])
    assert store.get("raw/a") == second_small
    assert store.get("att/b") == second_large
    assert leftovers(raw) == {"blobs": 2, "content.files": 1,
                              "content.chunks": math.ceil(len(second_large) / GRIDFS_CHUNK)}


def test_same_key_twice_in_one_call_keeps_the_last(store):
    store.put_many([("raw/dup", b"old"), ("raw/dup", b"new"), ("att/dup", os.urandom(100 * KiB)),
                    ("att/dup", b"small at last")])
    assert store.get("raw/dup") == b"new"
    assert store.get("att/dup") == b"small at last"


def test_switching_between_document_and_gridfs_leaves_nothing_behind(store, raw):
    small, large = b"tiny", os.urandom(500 * KiB)
    store.put_many([("att/x", small)])
    store.put_many([("att/x", large)])
    assert store.get("att/x") == large
    assert leftovers(raw) == {"blobs": 1, "content.files": 1, "content.chunks": 2}
    store.put_many([("att/x", small)])
    assert store.get("att/x") == small
    assert leftovers(raw) == {"blobs": 1, "content.files": 0, "content.chunks": 0}
    assert bytes(raw.blobs.find_one({"_id": "att/x"})["data"]) == small


def test_delete_frees_space(store, raw, db_name):
    store.put_many([("raw/1", TEXT), ("att/1", os.urandom(200 * KiB)), ("att/2", os.urandom(70 * KiB))])
    # A file a crashed put left without its marker: deleting the key must free it too.
    gridfs.GridFSBucket(raw, bucket_name="content").upload_from_stream("raw/orphan", os.urandom(10 * KiB))

    store.delete_many(["att/1", "raw/never-existed"])
    assert store.get("raw/1") == TEXT
    with pytest.raises(NotFoundError):
        store.get("att/1")
    assert raw["content.files"].count_documents({"filename": "att/1"}) == 0

    store.delete_many(["raw/1", "att/2", "raw/orphan", "att/1"])
    store.delete_many([])
    assert leftovers(raw) == {"blobs": 0, "content.files": 0, "content.chunks": 0}
    assert store.stats()["blobs"] == 0


def test_missing_key_is_not_found(store):
    with pytest.raises(NotFoundError):
        store.get("raw/nothing")
    store.put_many([("raw/gone", b"x")])
    store.delete_many(["raw/gone"])
    with pytest.raises(NotFoundError):
        store.get("raw/gone")


def test_stats(store, raw):
    assert store.stats() == {"blobs": 0, "bytes": 0, "storedBytes": 0, "gridfsBlobs": 0}
    big = os.urandom(100 * KiB)
    store.put_many([("raw/1", TEXT), ("raw/2", b"abc"), ("att/1", big)])
    stored = sum(d["stored"] for d in raw.blobs.find())
    assert store.stats() == {"blobs": 3, "bytes": len(TEXT) + 3 + len(big), "storedBytes": stored,
                             "gridfsBlobs": 1}
    assert stored < len(TEXT) + 3 + len(big)


def test_indexes_are_created_on_first_contact(store, raw):
    assert raw.list_collection_names() == []  # construction touched nothing
    store.ping()
    blobs = {i["name"]: i for i in raw.blobs.list_indexes()}
    assert dict(blobs["created_at_1"]["key"]) == {"created_at": 1}
    chunks = {i["name"]: i for i in raw["content.chunks"].list_indexes()}
    assert dict(chunks["files_id_1_n_1"]["key"]) == {"files_id": 1, "n": 1} and chunks["files_id_1_n_1"]["unique"]
    assert "filename_1_uploadDate_1" in {i["name"] for i in raw["content.files"].list_indexes()}


def test_many_threads_at_once(store, raw):
    threads, per_thread = 8, 200
    errors: list[BaseException] = []
    mismatches: list[str] = []

    def work(n: int) -> None:
        try:
            for i in range(per_thread):
                key = f"raw/{n}-{i}"
                # Every 40th blob is a large one, so GridFS uploads interleave with documents.
                data = os.urandom(80 * KiB) if i % 40 == 0 else b"%d:%d " % (n, i) * (i % 50 + 1)
                store.put_many([(key, data)])
                if store.get(key) != data:
                    mismatches.append(key)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors and not mismatches
    assert store.stats()["blobs"] == threads * per_thread
    assert store.stats()["gridfsBlobs"] == threads * (per_thread // 40)
    assert raw["content.files"].count_documents({}) == threads * (per_thread // 40)


def test_options(peer):
    default = MongoContentStore(f"{peer.url}/")
    assert default.database_name == "logmail"
    assert default.write_concern.document == {"w": "majority", "j": True, "wtimeout": 10000}
    relaxed = MongoContentStore(peer.url_for("opts", w=1, journal=True, wtimeoutMS=500))
    assert relaxed.database_name == "opts"
    assert relaxed.write_concern.document == {"w": 1, "j": True, "wtimeout": 500}
    relaxed.put_many([("raw/1", b"x")])
    assert relaxed.get("raw/1") == b"x"
    relaxed.delete_many(["raw/1"])
    for s in (default, relaxed):
        s.close()
    with pytest.raises(ConfigError):
        MongoContentStore(peer.url_for("opts", w=0))
    with pytest.raises(ConfigError):
        MongoContentStore(peer.url, gridfs_threshold=16 * 1024 * KiB)
    with pytest.raises(ConfigError):
        MongoContentStore("mongodb://[nonsense")
    with pytest.raises(ConfigError) as caught:
        MongoContentStore("mongodb://logmail:s3cret@127.0.0.1:99999/x")
    assert "Port" in str(caught.value) and "s3cret" not in str(caught.value)
    assert redact_url("mongodb://u:s3cret@db1:27017,db2/logmail?authSource=admin") == "mongodb://db1:27017,db2/logmail"


def test_down_at_construction_then_the_server_arrives(tmp_path, caplog):
    port = free_port()  # nobody listens here (yet)
    store = MongoContentStore(f"mongodb://127.0.0.1:{port}/late")  # default timeouts
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError):
        store.put_many([("raw/1", b"x")])
    assert time.monotonic() - started < 7  # the 5 s server selection timeout, not minutes

    quick = MongoContentStore(f"mongodb://127.0.0.1:{port}/late?serverSelectionTimeoutMS=300")
    for call in (lambda: quick.get("raw/1"), lambda: quick.delete_many(["raw/1"]), quick.stats, quick.ping):
        started = time.monotonic()
        with pytest.raises(StorageUnavailableError):
            call()
        assert time.monotonic() - started < 3

    caplog.set_level(logging.DEBUG, logger="logmail")
    secret = MongoContentStore(f"mongodb://logmail:s3cret@127.0.0.1:{port}/late?serverSelectionTimeoutMS=300")
    with pytest.raises(StorageUnavailableError) as caught:
        secret.put_many([("raw/1", b"x")])
    assert "s3cret" not in str(caught.value) and "s3cret" not in caplog.text and f":{port}/late" in caplog.text
    secret.close()

    with start_mongo_peer(tmp_path, port=port) as peer:
        store.put_many([("raw/1", b"arrived")])
        assert quick.get("raw/1") == b"arrived"
        client = pymongo.MongoClient(peer.url)
        assert "created_at_1" in {i["name"] for i in client.late.blobs.list_indexes()}
        client.close()
        store.close()
        quick.close()


def test_server_stops_mid_test_and_comes_back(tmp_path):
    peer = start_mongo_peer(tmp_path)
    store = MongoContentStore(peer.url_for("restart", serverSelectionTimeoutMS=1500), gridfs_threshold=THRESHOLD)
    try:
        big = os.urandom(200 * KiB)
        store.put_many([("raw/1", TEXT), ("att/1", big)])
        # SIGKILL, not a clean shutdown: what put_many returned for must survive a crash (j=True).
        peer.stop(kill=True)
        for call in (lambda: store.get("raw/1"), lambda: store.put_many([("raw/2", b"y")]), store.ping):
            started = time.monotonic()
            with pytest.raises(StorageUnavailableError):
                call()
            assert time.monotonic() - started < 5

        peer.start()  # same port, same data directory
        assert store.get("raw/1") == TEXT
        assert store.get("att/1") == big
        store.put_many([("raw/2", b"after")])
        assert store.get("raw/2") == b"after"
        assert store.stats()["blobs"] == 3
    finally:
        store.close()
        peer.close()
