/*
 * auth.c - whyops API key hashing, lookup and generation (see auth.h).
 *
 * SHA-256 and randomness come from GnuTLS.  The lookup walks every configured
 * hash and accumulates differences without branching, so its time does not
 * depend on how much of a presented key matched any configured one.
 */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>
#include <strings.h>

#include "auth.h"

const char *
auth_extract(const char *authorization, const char *x_api_key, size_t *len)
{
	const char *p;

	if (authorization != NULL) {
		p = authorization;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "bearer", 6) == 0 && (p[6] == ' ' || p[6] == '\t')) {
			p += 6;
			while (*p == ' ' || *p == '\t')
				p++;
			size_t n = strlen(p);
			while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
				n--;
			if (n > 0) {
				*len = n;
				return p;
			}
		}
	}
	if (x_api_key != NULL) {
		p = x_api_key;
		while (*p == ' ' || *p == '\t')
			p++;
		size_t n = strlen(p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n > 0) {
			*len = n;
			return p;
		}
	}
	return NULL;
}

void
auth_sha256(const char *data, size_t len, uint8_t out[32])
{
	gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, out);
}

const struct apikey *
auth_lookup(const struct config *cfg, const char *key, size_t len)
{
	const struct apikey *found = NULL;
	uint8_t h[32];

	auth_sha256(key, len, h);
	for (size_t i = 0; i < cfg->nkeys; i++) {
		unsigned diff = 0;

		for (size_t j = 0; j < 32; j++)
			diff |= (unsigned)(h[j] ^ cfg->keys[i].sha256[j]);
		/* Branch-free select: mask is all ones when diff == 0. */
		uintptr_t mask = (uintptr_t)0 - (uintptr_t)(((diff - 1) >> 8) & 1);
		found = (const struct apikey *)(((uintptr_t)&cfg->keys[i] & mask) |
		    ((uintptr_t)found & ~mask));
	}
	return found;
}

int
auth_new_key(char out[AUTH_KEY_LEN + 1])
{
	static const char alphabet[] =
	    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	size_t plen = sizeof(AUTH_KEY_PREFIX) - 1;
	size_t i = 0;

	memcpy(out, AUTH_KEY_PREFIX, plen);
	while (i < 32) {
		uint8_t r[64];

		if (gnutls_rnd(GNUTLS_RND_KEY, r, sizeof(r)) != 0)
			return -1;
		/* Rejection sampling: 248 = 4 * 62 keeps the draw uniform. */
		for (size_t j = 0; j < sizeof(r) && i < 32; j++) {
			if (r[j] < 248)
				out[plen + i++] = alphabet[r[j] % 62];
		}
	}
	out[AUTH_KEY_LEN] = '\0';
	return 0;
}
