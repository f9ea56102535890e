/*
 * auth.h - whyops API keys.
 *
 * Keys are "whyops_" followed by 32 base62 characters.  The configuration
 * stores only their SHA-256; a presented key is hashed and compared with
 * every configured hash in constant time.  Nothing here logs or keeps the
 * presented key.
 */
#ifndef WHYOPS_AUTH_H
#define WHYOPS_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define AUTH_KEY_PREFIX "whyops_"
#define AUTH_KEY_LEN (sizeof(AUTH_KEY_PREFIX) - 1 + 32)

/*
 * Extracts the key from an Authorization header ("Bearer KEY", scheme
 * case-insensitive) or else an x-api-key header.  Either may be NULL.
 * Returns a pointer into one of them and its length, or NULL.
 */
const char *auth_extract(const char *authorization, const char *x_api_key,
    size_t *len);

/* The configured key whose hash matches, or NULL.  Constant time in the key. */
const struct apikey *auth_lookup(const struct config *cfg, const char *key,
    size_t len);

void auth_sha256(const char *data, size_t len, uint8_t out[32]);

/* Writes a fresh random key (NUL-terminated) into out; 0 or -1. */
int auth_new_key(char out[AUTH_KEY_LEN + 1]);

#endif
