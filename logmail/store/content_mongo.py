"""The MongoDB content store: compressed blobs as documents, large ones in GridFS.

A blob whose compressed form fits under ``gridfs_threshold`` is one document in ``blobs``::

    {_id: key, codec, size, stored, data: Binary, created_at}

A larger one goes to the GridFS bucket ``content`` under a fresh ObjectId (``filename`` is the key),
and ``blobs`` holds only a marker ``{_id: key, codec, size, stored, gridfs: True, file_id,
created_at}``. The marker is written after the upload has completed, so a reader never follows it to
a half-written file. A fresh id per upload, rather than the key itself, means that re-putting a key
never deletes the copy the marker still points at: a re-put that fails half-way (the usual reason
for a re-put is a retry after a failure) leaves the previous, complete blob readable.

Every driver failure becomes ``StorageUnavailableError`` (SMTP 451, HTTP 503): the caller retries,
and a mail server must never turn an outage of its storage into a permanent rejection.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Iterable, Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

import gridfs
import pymongo
from bson import Binary, ObjectId
from gridfs.errors import CorruptGridFile, NoFile
from pymongo import ReplaceOne
from pymongo.errors import InvalidOperation, PyMongoError
from pymongo.write_concern import WriteConcern

from logmail.errors import ConfigError, NotFoundError, StorageUnavailableError
from logmail.store.content import compress, decompress

log = logging.getLogger("logmail.store.content_mongo")

MiB = 1024 * 1024
DEFAULT_DATABASE = "logmail"
BLOBS = "blobs"
BUCKET = "content"
# A BSON document is capped at 16 MiB; the rest of a blob document needs a little room.
MAX_GRIDFS_THRESHOLD = 15 * MiB

# Client options applied unless the URL sets them (URL options win, so operators can tune them).
# Server selection bounds how long a caller waits during an outage before it gets its 451/503.
_CLIENT_DEFAULTS = {
    "serverSelectionTimeoutMS": 5000,
    "connectTimeoutMS": 5000,
    # Generous: a GridFS upload or a large bulk write may legitimately take a while on a busy server.
    "socketTimeoutMS": 60000,
    "retryWrites": True,
    "retryReads": True,
    "appname": "logmail",
}
# A ``majority`` write that cannot reach enough members must fail (and be retried) rather than hang.
_DEFAULT_WTIMEOUT_MS = 10000


class MongoContentStore:
    """Blobs by key in MongoDB. Thread-safe: one ``MongoClient`` (itself thread-safe) per store."""

    def __init__(self, url: str, *, compression_level: int = 3, gridfs_threshold: int = 8 * MiB) -> None:
        if not 0 < gridfs_threshold <= MAX_GRIDFS_THRESHOLD:
            raise ConfigError(f"content.gridfs_threshold must be between 1 and {MAX_GRIDFS_THRESHOLD} bytes")
        self.level = compression_level
        self.gridfs_threshold = gridfs_threshold
        try:
            self.display_url = redact_url(url)
            url_options = {k.lower() for k, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
        except ValueError:
            raise ConfigError("content.url is not a valid URL") from None
        options = {k: v for k, v in _CLIENT_DEFAULTS.items() if k.lower() not in url_options}
        try:
            # connect=False: no network (not even SRV resolution) at construction, so the daemon
            # starts while MongoDB is down and the first use reports the outage instead.
            self._client: pymongo.MongoClient = pymongo.MongoClient(url, connect=False, **options)
            self._db = self._client.get_default_database(
                DEFAULT_DATABASE, write_concern=_write_concern(self._client.write_concern))
        except (PyMongoError, ValueError, TypeError) as exc:
            # Not chained: the driver's message may quote the URL, password and all.
            raise ConfigError(f"content.url is not a usable MongoDB URL ({self.display_url}): "
                              f"{_scrub(str(exc), url)}") from None
        self._blobs = self._db[BLOBS]
        self._bucket = gridfs.GridFSBucket(self._db, bucket_name=BUCKET)
        self._files = self._db[f"{BUCKET}.files"]
        self._chunks = self._db[f"{BUCKET}.chunks"]
        self._started = False
        self._start_lock = threading.Lock()

    @property
    def database_name(self) -> str:
        return self._db.name

    @property
    def write_concern(self) -> WriteConcern:
        return self._db.write_concern

    # -- the ContentStore interface ----------------------------------------------------------

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        # Unordered bulk writes may apply operations in any order: keep one (the last) per key.
        latest: dict[str, bytes] = {}
        for key, data in items:
            latest[key] = data
        if not latest:
            return
        now = _now()
        small: list[ReplaceOne] = []
        large: list[tuple[str, int, int, bytes]] = []
        for key, data in latest.items():
            codec, packed = compress(data, self.level)
            if len(packed) > self.gridfs_threshold:
                large.append((key, codec, len(data), packed))
            else:
                doc = {"codec": codec, "size": len(data), "stored": len(packed), "data": Binary(packed),
                       "created_at": now}
                small.append(ReplaceOne({"_id": key}, doc, upsert=True))
        keys = list(latest)
        with self._failures("write to"):
            self._ensure_started()
            # Files the keys point at now; they are replaced below and deleted once nothing refers
            # to them. One indexed round trip, the price of re-puts leaving no orphans behind.
            old_files = self._file_ids_of(keys)
            markers = []
            for key, codec, size, packed in large:
                file_id = ObjectId()
                self._bucket.upload_from_stream_with_id(file_id, key, packed,
                                                        metadata={"codec": codec, "size": size})
                doc = {"codec": codec, "size": size, "stored": len(packed), "gridfs": True,
                       "file_id": file_id, "created_at": now}
                markers.append(ReplaceOne({"_id": key}, doc, upsert=True))
            # Only after every upload is complete, so no marker points at a half-written file.
            self._blobs.bulk_write(small + markers, ordered=False)
        if old_files:
            try:
                self._delete_files(old_files)
            except PyMongoError as exc:
                # The new blobs are durable, so the put has succeeded; the replaced files are only
                # garbage now (files whose id no marker names), left for a later clean-up.
                log.warning("could not delete %d replaced GridFS file(s) from %s: %s",
                            len(old_files), self.display_url, type(exc).__name__)

    def get(self, key: str) -> bytes:
        with self._failures("read"):
            self._ensure_started()
            # A concurrent re-put or delete may remove the file between reading the marker and
            # downloading it: look at the marker again, a few times, before giving up.
            for _attempt in range(3):
                doc = self._blobs.find_one({"_id": key})
                if doc is None:
                    raise NotFoundError(f"content {key} not found")
                if not doc.get("gridfs"):
                    return decompress(doc["codec"], doc["data"])
                try:
                    packed = self._bucket.open_download_stream(doc["file_id"]).read()
                except (NoFile, CorruptGridFile):
                    continue
                return decompress(doc["codec"], packed)
        log.error("content %s names GridFS file %s, which does not exist", key, doc["file_id"])
        raise NotFoundError(f"content {key} not found")

    def delete_many(self, keys: Iterable[str]) -> None:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return
        with self._failures("delete from"):
            self._ensure_started()
            # Files first, by filename (always the key): this also catches files orphaned by a put
            # that failed before writing its marker. Should this fail half-way, the markers are
            # still there and a retried delete finds everything again.
            self._delete_files(self._file_ids_of(keys, by_filename=True))
            self._blobs.delete_many({"_id": {"$in": keys}})

    def stats(self) -> dict[str, int]:
        pipeline = [{"$group": {
            "_id": None,
            "blobs": {"$sum": 1},
            "bytes": {"$sum": "$size"},
            "storedBytes": {"$sum": "$stored"},
            "gridfsBlobs": {"$sum": {"$cond": [{"$eq": ["$gridfs", True]}, 1, 0]}},
        }}]
        with self._failures("read"):
            self._ensure_started()
            rows = list(self._blobs.aggregate(pipeline))
        totals = rows[0] if rows else {}
        return {name: int(totals.get(name, 0)) for name in ("blobs", "bytes", "storedBytes", "gridfsBlobs")}

    def ping(self) -> None:
        with self._failures("reach"):
            self._client.admin.command("ping")
            self._ensure_started()

    def close(self) -> None:
        self._client.close()

    # -- helpers -----------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        """Create the indexes on the first successful contact (not at construction: the server
        may be down then). Creating an existing index is a no-op, so every process may do it."""
        if self._started:
            return
        with self._start_lock:
            if self._started:
                return
            # For retention and garbage-collection scans by age.
            self._blobs.create_index([("created_at", pymongo.ASCENDING)])
            # The indexes GridFS itself creates lazily on the first upload, with the driver's names
            # (a different name for the same keys is an error); made here so reads and deletes by
            # filename are indexed from the start.
            self._files.create_index([("filename", pymongo.ASCENDING), ("uploadDate", pymongo.ASCENDING)])
            self._chunks.create_index([("files_id", pymongo.ASCENDING), ("n", pymongo.ASCENDING)], unique=True)
            self._started = True
            log.info("MongoDB content store ready at %s", self.display_url)

    def _file_ids_of(self, keys: list[str], *, by_filename: bool = False) -> list[ObjectId]:
        if by_filename:
            return [d["_id"] for d in self._files.find({"filename": {"$in": keys}}, {"_id": 1})]
        return [d["file_id"] for d in self._blobs.find({"_id": {"$in": keys}, "gridfs": True}, {"file_id": 1})]

    def _delete_files(self, file_ids: list[ObjectId]) -> None:
        """What ``GridFSBucket.delete`` does, for many files in two round trips: the files
        documents first, so that no reader opens a file whose chunks are going."""
        if not file_ids:
            return
        self._files.delete_many({"_id": {"$in": file_ids}})
        self._chunks.delete_many({"files_id": {"$in": file_ids}})

    @contextlib.contextmanager
    def _failures(self, action: str) -> Iterator[None]:
        try:
            yield
        except InvalidOperation:
            raise  # used after close(): a programming error, not an outage
        except PyMongoError as exc:
            # Connection refused, timeouts, server selection, not-primary, write concern errors...
            # The detail goes to the log (host names, never credentials or contents); the message
            # is shown to clients, so it stays generic.
            log.warning("MongoDB content store %s: cannot %s it: %s: %.300s",
                        self.display_url, action, type(exc).__name__, exc)
            raise StorageUnavailableError(f"cannot {action} the content store") from exc


def _write_concern(from_url: WriteConcern) -> WriteConcern:
    """Majority and journalled unless the URL says otherwise (``?w=1&journal=true``, say).

    ``put_many`` promises durability, hence ``w="majority", j=True``. MongoDB (and the SecantusDB
    test peer, single-node replica set or ``--standalone``) accepts ``majority`` on a single node;
    should a deployment refuse it, set ``w`` in the URL. Unacknowledged writes promise nothing.
    """
    doc = from_url.document
    if doc.get("w") == 0:
        raise ConfigError("content.url must not ask for w=0: the content store needs acknowledged writes")
    if doc.get("fsync"):
        journal = None  # fsync and j are alternatives; the URL chose fsync
    else:
        journal = doc.get("j", True)
    return WriteConcern(w=doc.get("w", "majority"), wtimeout=doc.get("wtimeout", _DEFAULT_WTIMEOUT_MS),
                        j=journal, fsync=doc.get("fsync"))


def redact_url(url: str) -> str:
    """``url`` without its user information and query (which may hold secrets), for logs."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{parts.path}"


def _scrub(text: str, url: str) -> str:
    """``text`` with the URL's password (as written, and decoded) blanked out."""
    password = url.split("://", 1)[-1].rsplit("@", 1)[0].partition(":")[2] if "@" in url else ""
    for secret in {password, unquote(password)} - {""}:
        text = text.replace(secret, "***")
    return text


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
