/*
 * walbuf.h — a SQLite VFS that coalesces the writes of a write-ahead log into large ones.
 *
 * SQLite appends a commit to its WAL one frame at a time: a 24-byte frame header and a page,
 * two write(2) calls per page. A commit of a few hundred pages therefore costs a few hundred
 * system calls before its fsync, and on a virtual machine each of them is expensive. The VFS
 * registered here wraps the default one; for WAL files only, it gathers contiguous writes in a
 * buffer and hands them to the real file in chunks of LIMIT_WALBUF_CHUNK_BYTES just before
 * anything that must see them (a sync, a read, a size query, a truncation, a close, a file
 * control, or a wal-index memory barrier on the database the WAL belongs to). The bytes that
 * reach the disk and the moment they are made durable are the same as without it; only the
 * number of system calls changes.
 *
 * A WAL file is used by one connection, and a connection by one thread at a time, so the
 * buffer needs no lock. A write error found while flushing is returned by the operation that
 * flushed and stays sticky: every later operation on that WAL fails until it is closed.
 */
#ifndef LEDGERD_STORE_WALBUF_H
#define LEDGERD_STORE_WALBUF_H

/* The name to pass to sqlite3_open_v2() to use this VFS. */
#define STORE_WALBUF_VFS_NAME "ledgerd-walbuf"

/* Registers the VFS (not as the default) on first call; later calls return the first result.
 * Returns 0 or -EIO. Thread-safe. */
int store_walbuf_register(void);

#endif
