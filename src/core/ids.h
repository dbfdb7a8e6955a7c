/*
 * ids.h — the identifier grammars of the API and the generators for ids the server makes.
 *
 * Resource ids (client-supplied or UUIDv7), ledger names, request ids, and random hex ids.
 * Every check takes (ptr, len) and never reads past len.
 */
#ifndef LEDGERD_CORE_IDS_H
#define LEDGERD_CORE_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDS_UUID_LEN 36

/* ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$ */
bool ids_resource_id_valid(const char *s, size_t len);
/* ^[A-Z0-9_]{1,16}$ */
bool ids_ledger_valid(const char *s, size_t len);
/* ^[A-Za-z0-9._:-]{1,128}$ */
bool ids_request_id_valid(const char *s, size_t len);
/* 1-255 bytes in 0x20-0x7E */
bool ids_idempotency_key_valid(const char *s, size_t len);

/* Writes a UUIDv7 (RFC 9562: 48-bit Unix ms, version, 74 random bits) as 36 lower-case chars
 * plus a NUL into out. Ids made by one thread within one millisecond are strictly increasing
 * (the random part is incremented, RFC 9562 §6.2 method 2). Thread-safe. */
void ids_uuidv7(int64_t unix_ms, char out[IDS_UUID_LEN + 1]);

/* Writes 2*nbytes lower-case hex digits of fresh randomness plus a NUL. Thread-safe. */
void ids_random_hex(char *out, size_t nbytes);
/* The value of one hex digit (either case), or -1 when c is not one. */
int ids_hex_value(char c);

#endif
