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

static uint64_t
emb_dimensions(json_t *embedding)
{
	if (json_is_array(embedding))
		return json_array_size(embedding);
	if (json_is_string(embedding))
		return emb_base64_bytes(json_string_value(embedding),
		    json_string_length(embedding)) / 4;
	return 0;
}

static void
emb_on_document(struct decoder *dec, json_t *obj)
{
	struct llm_result *res = decode_res(dec);
	json_t *data = json_object_get(obj, "data");
	json_t *u = json_object_get(obj, "usage");

	llm_str_set_json(res, &res->model, json_object_get(obj, "model"));
	if (json_is_array(data)) {
		res->has_embeddings = true;
		res->embeddings = json_array_size(data);
		res->dimensions = emb_dimensions(json_object_get(
		    json_array_get(data, 0), "embedding"));
	}
	if (json_is_object(u)) {
		llm_usage_set_json(&res->usage.input, json_object_get(u,
		    "prompt_tokens"));
		llm_usage_set_json(&res->usage.total, json_object_get(u,
		    "total_tokens"));
	}
}

static void
models_on_document(struct decoder *dec, json_t *obj)
{
	(void)dec;
	(void)obj;
}

const struct decode_dialect decode_embeddings = {
	.name = "embeddings",
	.on_document = emb_on_document,
};

const struct decode_dialect decode_models = {
	.name = "models",
	.on_document = models_on_document,
};
