/*
 * tlscred.c - the inbound listener's certificate chain and key (tlscred.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>

#include "tlscred.h"

#define TLSCRED_MAX_CHAIN 16

struct tlscred {
	gnutls_pcert_st pcert[TLSCRED_MAX_CHAIN];
	unsigned npcert;
	gnutls_privkey_t key;
	struct tlscred *older;		/* replaced ones, freed at shutdown */
};

static _Atomic(struct tlscred *) tlscred_current;
static pthread_mutex_t tlscred_lock = PTHREAD_MUTEX_INITIALIZER;	/* writers */

static void
tlscred_free(struct tlscred *c)
{
	for (unsigned i = 0; i < c->npcert; i++)
		gnutls_pcert_deinit(&c->pcert[i]);
	if (c->key != NULL)
		gnutls_privkey_deinit(c->key);
	free(c);
}

int
tlscred_reload(const char *cert_file, const char *key_file, char *err,
    size_t errsize)
{
	gnutls_datum_t cert = { NULL, 0 }, key = { NULL, 0 };
	struct tlscred *c;
	int rc;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		abort();
	c->npcert = TLSCRED_MAX_CHAIN;
	if ((rc = gnutls_load_file(cert_file, &cert)) < 0) {
		snprintf(err, errsize, "cannot read %s: %s", cert_file, gnutls_strerror(rc));
		goto fail;
	}
	if ((rc = gnutls_load_file(key_file, &key)) < 0) {
		snprintf(err, errsize, "cannot read %s: %s", key_file, gnutls_strerror(rc));
		goto fail;
	}
	rc = gnutls_pcert_list_import_x509_raw(c->pcert, &c->npcert, &cert,
	    GNUTLS_X509_FMT_PEM, GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
	if (rc < 0) {
		c->npcert = 0;
		snprintf(err, errsize, "%s: not a PEM certificate chain (leaf first, "
		    "at most %d): %s", cert_file, TLSCRED_MAX_CHAIN, gnutls_strerror(rc));
		goto fail;
	}
	if ((rc = gnutls_privkey_init(&c->key)) < 0 ||
	    (rc = gnutls_privkey_import_x509_raw(c->key, &key, GNUTLS_X509_FMT_PEM,
	    NULL, 0)) < 0) {
		snprintf(err, errsize, "%s: not a PEM private key: %s", key_file,
		    gnutls_strerror(rc));
		goto fail;
	}
	/* The key must match the leaf: compare the public keys' ids. */
	{
		gnutls_pubkey_t pub;
		unsigned char a[64], b[64];
		size_t al = sizeof(a), bl = sizeof(b);

		if (gnutls_pubkey_init(&pub) < 0)
			abort();
		rc = gnutls_pubkey_import_privkey(pub, c->key, 0, 0);
		if (rc >= 0)
			rc = gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, a, &al);
		gnutls_pubkey_deinit(pub);
		if (rc >= 0)
			rc = gnutls_pubkey_get_key_id(c->pcert[0].pubkey,
			    GNUTLS_KEYID_USE_SHA256, b, &bl);
		if (rc < 0 || al != bl || memcmp(a, b, al) != 0) {
			snprintf(err, errsize, "%s does not match the certificate in %s",
			    key_file, cert_file);
			goto fail;
		}
	}
	gnutls_free(cert.data);
	explicit_bzero(key.data, key.size);
	gnutls_free(key.data);
	pthread_mutex_lock(&tlscred_lock);
	c->older = atomic_load(&tlscred_current);
	atomic_store(&tlscred_current, c);
	pthread_mutex_unlock(&tlscred_lock);
	return 0;
fail:
	gnutls_free(cert.data);
	if (key.data != NULL)
		explicit_bzero(key.data, key.size);
	gnutls_free(key.data);
	tlscred_free(c);
	return -1;
}

int
tlscred_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn,
    int nreqs, const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
    gnutls_pcert_st **pcert, unsigned int *pcert_length,
    gnutls_privkey_t *privkey)
{
	struct tlscred *c = atomic_load(&tlscred_current);

	(void)session;
	(void)req_ca_rdn;
	(void)nreqs;
	(void)pk_algos;
	(void)pk_algos_length;
	if (c == NULL)
		return -1;
	*pcert = c->pcert;
	*pcert_length = c->npcert;
	*privkey = c->key;
	return 0;
}

void
tlscred_free_all(void)
{
	pthread_mutex_lock(&tlscred_lock);
	struct tlscred *c = atomic_exchange(&tlscred_current, NULL);

	while (c != NULL) {
		struct tlscred *o = c->older;
		tlscred_free(c);
		c = o;
	}
	pthread_mutex_unlock(&tlscred_lock);
}
