/*
 * decode_embeddings.c - OpenAI list endpoints: embeddings and models.
 *
 * Neither streams, so both only implement on_document.  Embeddings
 * (POST /v1/embeddings) keep the model, the number of vectors, their
 * dimensions and usage, never the vectors: dimensions is the length of the
 * first embedding array or, for encoding_format=base64 (the SDK default),
 * the decoded byte length of the first embedding / 4 (little-endian
 * float32s).  Models (GET /v1/models) keep nothing but the fact the body
 * parsed as a JSON object (llm_result.complete) or carried an error, both
 * done by decode.c.
 */
#include "decode.h"

/* Decoded length of base64 text: 6 bits per alphabet character (standard or
 * URL-safe), padding and blanks ignored. */
static uint64_t
emb_base64_bytes(const char *s, size_t n)
{
	uint64_t chars = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '+' || ch == '/' ||
		    ch == '-' || ch == '_')
			chars++;
	}
	return chars * 6 / 8;
}

/* The literal is counted as it lies: the only escape base64 text can carry
 * is "\/", whose backslash is not in the alphabet. */
static uint64_t
emb_dimensions(struct jv embedding)
{
	if (jv_is_array(embedding))
		return jv_count(embedding);
	if (jv_is_string(embedding))
		return emb_base64_bytes(embedding.p + 1, embedding.n - 2) / 4;
	return 0;
}

static void
emb_on_document(struct decoder *dec, struct jv obj)
{
	static const char *const keys[] = { "model", "data", "usage" };
	struct llm_result *res = decode_res(dec);
	struct jv m[3], first;
	size_t pos = 0;

	jv_get_many(obj, keys, 3, m);
	llm_str_set_jv(res, &res->model, m[0]);
	if (jv_is_array(m[1])) {
		res->has_embeddings = true;
		res->embeddings = jv_count(m[1]);
		if (jv_next(m[1], &pos, &first))
			res->dimensions = emb_dimensions(jv_get(first,
			    "embedding"));
	}
	if (jv_is_object(m[2])) {
		llm_usage_set_jv(&res->usage.input, jv_get(m[2],
		    "prompt_tokens"));
		llm_usage_set_jv(&res->usage.total, jv_get(m[2],
		    "total_tokens"));
	}
}

static void
models_on_document(struct decoder *dec, struct jv obj)
{
	(void)dec;
	(void)obj;
}

const struct decode_dialect decode_embeddings = {
	.name = "embeddings",
	.on_document_jv = emb_on_document,
};

const struct decode_dialect decode_models = {
	.name = "models",
	.on_document_jv = models_on_document,
};
