/*
 * tlscred.h - the inbound listener's certificate, swappable at run time.
 *
 * The HTTPS listener takes its certificate from a callback
 * (MHD_OPTION_HTTPS_CERT_CALLBACK) that returns the credential current when
 * the handshake starts.  tlscred_reload() loads new files and swaps the
 * pointer atomically: new connections get the new certificate, existing
 * ones keep theirs.  A replaced credential is never freed before
 * tlscred_free_all() at shutdown (a handshake may still be reading it, and
 * GnuTLS does not tell when a session lets go of it); each costs a few KiB
 * per SIGHUP that changed nothing or something.
 */
#ifndef WHYOPS_TLSCRED_H
#define WHYOPS_TLSCRED_H

#include <stddef.h>
#include <gnutls/abstract.h>

/* Loads cert_file (PEM chain, leaf first) and key_file (PEM).  Returns 0 and
 * makes them current, or -1 with a message in err (the current credential
 * stays). */
int tlscred_reload(const char *cert_file, const char *key_file, char *err,
    size_t errsize);

/* gnutls_certificate_retrieve_function2 for MHD_OPTION_HTTPS_CERT_CALLBACK. */
int tlscred_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn,
    int nreqs, const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
    gnutls_pcert_st **pcert, unsigned int *pcert_length,
    gnutls_privkey_t *privkey);

/* Frees the current and every replaced credential: only after the HTTP
 * server has stopped. */
void tlscred_free_all(void);

#endif
