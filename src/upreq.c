/*
 * upreq.c - building the upstream request (see upreq.h).
 *
 * Headers, in the order they are sent:
 *   the client's API headers (hdr_client_passthrough), unless the provider
 *   configures the same name; anthropic-version 2023-06-01 for Anthropic
 *   providers when nobody set it; Content-Type application/json on POST when
 *   the client sent none; then the provider's tail: its credential
 *   (Authorization: Bearer for openai, x-api-key for anthropic), its
 *   configured headers, and an empty "Expect:" (libcurl would otherwise send
 *   "Expect: 100-continue" above 1 MB and wait a round trip).
 *
 * The tail is the same for every request to a provider, so it is built once
 * per configuration; a request only links its own few nodes in front of it.
 * That keeps the request path free of the dozen small allocations that
 * curl_slist_append() would cost.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hdr.h"
#include "jsonscan.h"
#include "jsonw.h"
#include "upreq.h"

/* Per configuration generation (cfg->gen_data): the provider headers every
 * upstream request ends with, index as in cfg->providers. */
struct upreq_gen {
	size_t n;
	struct curl_slist *tails[];
};

static struct curl_slist *
upreq_append(struct curl_slist *l, const char *name, const char *value)
{
	struct buf line = { 0 };
	struct curl_slist *n;

	buf_printf(&line, "%s:%s%s", name, *value ? " " : "", value);
	n = curl_slist_append(l, line.data);
	buf_free(&line);
	if (n == NULL)
		abort();
	return n;
}

static void
upreq_gen_free(void *data)
{
	struct upreq_gen *g = data;

	for (size_t i = 0; i < g->n; i++) {
		for (struct curl_slist *n = g->tails[i]; n != NULL; n = n->next)
			explicit_bzero(n->data, strlen(n->data));
		curl_slist_free_all(g->tails[i]);
	}
	free(g);
}

int
upreq_init(struct config *cfg)
{
	struct upreq_gen *g;

	if (cfg->gen_data != NULL)
		return 0;
	g = calloc(1, sizeof(*g) + (cfg->nproviders + 1) * sizeof(g->tails[0]));
	if (g == NULL)
		return -1;
	g->n = cfg->nproviders;
	cfg->gen_data = g;
	cfg->gen_free = upreq_gen_free;
	for (size_t i = 0; i < cfg->nproviders; i++) {
		const struct provider *p = &cfg->providers[i];
		struct curl_slist *l = NULL;

		if (p->api_key != NULL && p->type == PROVIDER_ANTHROPIC) {
			l = upreq_append(l, "x-api-key", p->api_key);
		} else if (p->api_key != NULL) {
			struct buf b = { 0 };
			buf_printf(&b, "Bearer %s", p->api_key);
			l = upreq_append(l, "Authorization", b.data);
			/* The credential is wiped, not just freed. */
			explicit_bzero(b.data, b.len);
			buf_free(&b);
		}
		for (size_t j = 0; j < p->nheaders; j++)
			l = upreq_append(l, p->headers[j].name, p->headers[j].value);
		l = upreq_append(l, "Expect", "");
		g->tails[i] = l;
	}
	return 0;
}

void
upreq_free(void)
{
	/* The tails go with their configuration (config_free). */
}

static bool
upreq_provider_sets(const struct provider *p, const char *name)
{
	for (size_t i = 0; i < p->nheaders; i++) {
		if (strcasecmp(p->headers[i].name, name) == 0)
			return true;
	}
	return false;
}

/* Adds "name: value" as the request's next own node (text in rq->hdr_text). */
static void
upreq_node(struct request *rq, const char *name, const char *value)
{
	if (rq->nhdr_nodes == REQUEST_MAX_HDR_NODES)
		return;			/* beyond the allowlist's size: duplicates */
	rq->hdr_offsets[rq->nhdr_nodes++] = rq->hdr_text.len;
	buf_appends(&rq->hdr_text, name);
	buf_append(&rq->hdr_text, ": ", 2);
	buf_appends(&rq->hdr_text, value);
	buf_append(&rq->hdr_text, "", 1);
}

static enum MHD_Result
upreq_client_header_cb(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct request *rq = cls;

	(void)kind;
	if (value != NULL && hdr_client_passthrough(key) &&
	    !upreq_provider_sets(rq->provider, key))
		upreq_node(rq, key, value);
	return MHD_YES;
}

void
upreq_build(struct request *rq, const char *query)
{
	const struct provider *p = rq->provider;
	struct buf url = { 0 };
	bool has_version = false, has_ctype = false;

	buf_reserve(&url, strlen(p->base_url) + 32 + (query ? strlen(query) : 0));
	buf_appends(&url, p->base_url);
	buf_appends(&url, rq->route->path);
	if (query != NULL && *query != '\0') {
		buf_append(&url, "?", 1);
		buf_appends(&url, query);
	}
	rq->upstream_url = buf_steal(&url, NULL);

	buf_reserve(&rq->hdr_text, 256);
	MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, upreq_client_header_cb, rq);
	for (size_t i = 0; i < rq->nhdr_nodes; i++) {
		const char *h = rq->hdr_text.data + rq->hdr_offsets[i];
		has_version |= strncasecmp(h, "anthropic-version:", 18) == 0;
		has_ctype |= strncasecmp(h, "Content-Type:", 13) == 0;
	}
	if (p->type == PROVIDER_ANTHROPIC && !has_version &&
	    !upreq_provider_sets(p, "anthropic-version"))
		upreq_node(rq, "anthropic-version", "2023-06-01");
	if (strcmp(rq->route->method, "POST") == 0 && !has_ctype &&
	    !upreq_provider_sets(p, "Content-Type"))
		upreq_node(rq, "Content-Type", "application/json");

	/* Link the nodes only now: hdr_text may have moved while growing. */
	struct curl_slist *tail = ((const struct upreq_gen *)rq->cfg->gen_data)->
	    tails[p - rq->cfg->providers];
	for (size_t i = rq->nhdr_nodes; i-- > 0;) {
		rq->hdr_nodes[i].data = rq->hdr_text.data + rq->hdr_offsets[i];
		rq->hdr_nodes[i].next = tail;
		tail = &rq->hdr_nodes[i];
	}
	rq->upstream_headers = tail;
}

void
upreq_rewrite_model(struct request *rq, const char *model)
{
	size_t vb, ve;
	struct buf enc = { 0 }, nb = { 0 };

	/* Not json_string(): the model may be invalid UTF-8 (an unpaired
	 * surrogate escape decodes to one), which jansson refuses; jsonw_str()
	 * writes such bytes as '?'. */
	jsonw_str(&enc, model, strlen(model));
	if (jsonscan_member(rq->body.data, rq->body.len, "model", &vb, &ve) == 0) {
		buf_reserve(&nb, rq->body.len + enc.len);
		buf_append(&nb, rq->body.data, vb);
		buf_append(&nb, enc.data, enc.len);
		buf_append(&nb, rq->body.data + ve, rq->body.len - ve);
		buf_free(&rq->body);
		rq->body = nb;
	}
	buf_free(&enc);
}

/* Replaces body bytes [b, e) with text. */
static void
upreq_splice(struct request *rq, size_t b, size_t e, const char *text)
{
	size_t tlen = strlen(text);
	struct buf nb = { 0 };

	buf_reserve(&nb, rq->body.len - (e - b) + tlen);
	buf_append(&nb, rq->body.data, b);
	buf_append(&nb, text, tlen);
	buf_append(&nb, rq->body.data + e, rq->body.len - e);
	buf_free(&rq->body);
	rq->body = nb;
}

static bool
upreq_is(const char *s, size_t b, size_t e, const char *lit)
{
	return e - b == strlen(lit) && memcmp(s + b, lit, e - b) == 0;
}

bool
upreq_force_usage(struct request *rq)
{
	const char *s = rq->body.data;
	size_t n = rq->body.len, vb, ve, ib, ie, end;

	if (jsonscan_member(s, n, "stream_options", &vb, &ve) != 0) {
		/* Insert the member before the object's closing brace. */
		end = n;
		while (end > 0 && strchr(" \t\r\n", s[end - 1]))
			end--;
		if (end == 0 || s[end - 1] != '}')
			return false;
		upreq_splice(rq, end - 1, end - 1,
		    ",\"stream_options\":{\"include_usage\":true}");
		return true;
	}
	if (s[vb] != '{') {		/* null or another type: replace */
		upreq_splice(rq, vb, ve, "{\"include_usage\":true}");
		return true;
	}
	if (jsonscan_member(s + vb, ve - vb, "include_usage", &ib, &ie) == 0) {
		if (upreq_is(s + vb, ib, ie, "true"))
			return false;	/* the client asked for usage itself */
		upreq_splice(rq, vb + ib, vb + ie, "true");
		return true;
	}
	/* An object without include_usage: add it first. */
	size_t inner = vb + 1;
	while (inner < ve && strchr(" \t\r\n", s[inner]))
		inner++;
	upreq_splice(rq, vb + 1, vb + 1, s[inner] == '}' ?
	    "\"include_usage\":true" : "\"include_usage\":true,");
	return true;
}
