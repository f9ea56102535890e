/*
 * llm.h - what one upstream call produced, whatever the API dialect.
 *
 * A decoder (decode.h) fills a struct llm_result while the upstream body
 * arrives; the proxy later turns it into telemetry.  The structure is common
 * to OpenAI chat completions, OpenAI Responses, Anthropic messages and the
 * embeddings / models endpoints, so it names things once:
 *   input  = prompt_tokens / input_tokens
 *   output = completion_tokens / output_tokens
 *   cached = prompt_tokens_details.cached_tokens / cache_read_input_tokens
 * A chat completion with n > 1 has one choice per index; a Responses or
 * Anthropic answer has exactly one choice (index 0).
 *
 * Memory: every string is a struct llm_str owned by the result, and the sum
 * of their allocations is capped by llm_limits.max_text.  Text that does not
 * fit is cut at a UTF-8 character boundary, the string is marked capped (no
 * later append lands after the gap) and LLM_NOTE_TEXT_CAPPED is counted.
 * Choices and tool calls / items per choice are capped in number.  Nothing
 * here does I/O.
 *
 * Threads: a result is built by one thread (the upstream thread); once the
 * decoder has finished it may be handed to another thread, which then owns
 * it and frees it with llm_result_free().
 */
#ifndef WHYOPS_LLM_H
#define WHYOPS_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "jsonv.h"

/* A length-counted string; ptr is NULL or NUL-terminated.  len == 0 means
 * "absent": an empty value and a missing one are not told apart. */
struct llm_str {
	char *ptr;
	size_t len;
	size_t cap;		/* bytes allocated, charged to the budget */
	bool capped;		/* cut at the budget; appends are dropped */
};

enum llm_tool_kind {
	LLM_TOOL_FUNCTION,	/* a function the client runs: chat "function",
				 * Responses "function_call", Anthropic
				 * "tool_use" */
	LLM_TOOL_CUSTOM,	/* OpenAI custom tool: free-form text input */
	LLM_TOOL_SERVER,	/* run by the provider: Anthropic
				 * "server_tool_use", "mcp_tool_use" */
	LLM_TOOL__COUNT
};

extern const char *const llm_tool_kind_names[LLM_TOOL__COUNT];

struct llm_tool_call {
	enum llm_tool_kind kind;
	bool used;
	struct llm_str type;	/* as the upstream spelled it */
	struct llm_str id;	/* chat id, Responses call_id, Anthropic id */
	struct llm_str item_id;	/* Responses output item id (fc_...) */
	struct llm_str name;
	struct llm_str arguments; /* JSON text: chat / Responses as sent
				 * (fragments joined); Anthropic input
				 * re-serialised compact; custom tools: input */
};

/* An output element kept only by what it is: Responses output items that
 * are not messages, function calls or reasoning (web_search_call, ...),
 * Anthropic redacted_thinking and *_tool_result blocks. */
struct llm_item {
	struct llm_str type;
	struct llm_str id;	/* item id, or tool_use_id for tool results */
};

struct llm_choice {
	bool used;
	bool reasoning_break;	/* next reasoning text starts a new part */
	struct llm_str content;
	struct llm_str refusal;
	struct llm_str reasoning; /* parts joined with a blank line */
	struct llm_str finish_reason; /* finish_reason, stop_reason, or
				 * Responses incomplete_details.reason */
	struct llm_str stop_sequence;
	struct llm_tool_call *tool_calls; /* by index; slots the upstream
				 * skipped have used == false */
	size_t ntool_calls;
	struct llm_item *items;
	size_t nitems;
	uint64_t citations;	/* citations / annotations attached to text */
};

#define LLM_UNSET (-1)

/* Token counts as reported; LLM_UNSET where the upstream reported none. */
struct llm_usage {
	int64_t input;
	int64_t output;
	int64_t total;
	int64_t cached;		/* prompt tokens read from cache */
	int64_t cache_creation;	/* prompt tokens written to cache */
	int64_t reasoning;
};

struct llm_error {
	bool present;
	struct llm_str type;
	struct llm_str code;	/* numbers are rendered as decimal text */
	struct llm_str message;
};

/* Things that went wrong while decoding; counted in llm_result.notes. */
enum llm_note {
	LLM_NOTE_OVERSIZED_EVENT,	/* an SSE event over max_event_size */
	LLM_NOTE_INVALID_JSON,		/* an event or body that is not a JSON
					 * object */
	LLM_NOTE_TRUNCATED,		/* stream ended without its terminal
					 * event */
	LLM_NOTE_PARTIAL_EVENT,		/* stream ended inside an event */
	LLM_NOTE_TEXT_CAPPED,		/* text cut at max_text */
	LLM_NOTE_BODY_TOO_LARGE,	/* non-streamed body over the limit */
	LLM_NOTE_TOO_MANY,		/* choice / tool call / item index over
					 * the limit, dropped */
	LLM_NOTE_TRANSPORT_ERROR,	/* the transfer failed (see
					 * transport_error) */
	LLM_NOTE__COUNT
};

/* snake_case names for logs and metrics labels */
extern const char *const llm_note_names[LLM_NOTE__COUNT];

struct llm_limits {
	size_t max_text;	/* bytes of all strings together */
	size_t max_choices;	/* highest choice index + 1 */
	size_t max_items;	/* tool calls, and items, per choice */
};

struct llm_result {
	struct llm_str id;
	struct llm_str model;
	struct llm_str system_fingerprint;
	struct llm_str service_tier;
	struct llm_str status;		/* Responses status */
	struct llm_choice *choices;	/* by choice index; check used */
	size_t nchoices;
	struct llm_usage usage;
	struct llm_error error;		/* in-band error, first one wins */
	bool has_embeddings;
	uint64_t embeddings;		/* number of vectors */
	uint64_t dimensions;		/* of the first vector */
	bool complete;			/* terminal event seen / body parsed */
	unsigned notes[LLM_NOTE__COUNT];
	struct llm_str transport_error;
	/* budget */
	struct llm_limits limits;
	size_t text_used;
};

/* Create an empty result.  limits may be NULL for the defaults below. */
struct llm_result *llm_result_new(const struct llm_limits *limits);
void llm_result_free(struct llm_result *res);
extern const struct llm_limits llm_default_limits;

/*
 * Builders, used by the decoders.  They never fail: what exceeds a limit
 * is dropped and noted.  llm_result_choice() and llm_choice_tool_call()
 * return NULL when the index is over the limit; the pointers they return
 * stay valid until the next call that grows the same array (keep indices
 * across events, not pointers).
 */
void llm_note(struct llm_result *res, enum llm_note note);
struct llm_choice *llm_result_choice(struct llm_result *res, size_t index);
struct llm_tool_call *llm_choice_tool_call(struct llm_result *res,
    struct llm_choice *c, size_t index);
struct llm_tool_call *llm_choice_add_tool_call(struct llm_result *res,
    struct llm_choice *c);
void llm_choice_add_item(struct llm_result *res, struct llm_choice *c,
    json_t *type, json_t *id);

void llm_str_append(struct llm_result *res, struct llm_str *s,
    const char *p, size_t n);
void llm_str_set(struct llm_result *res, struct llm_str *s,
    const char *p, size_t n);
void llm_str_clear(struct llm_result *res, struct llm_str *s);

/* Reasoning text: a new part is separated from earlier text by "\n\n". */
void llm_reasoning_break(struct llm_choice *c);
void llm_reasoning_append(struct llm_result *res, struct llm_choice *c,
    json_t *text);

/*
 * jansson conveniences: they act only when v is a JSON string (set/append,
 * an empty string leaves the target untouched) or integer (usage).
 * llm_str_set_json() returns true when it set something.
 */
bool llm_str_set_json(struct llm_result *res, struct llm_str *s, json_t *v);
void llm_str_append_json(struct llm_result *res, struct llm_str *s,
    json_t *v);
void llm_str_fill_json(struct llm_result *res, struct llm_str *s, json_t *v);
void llm_usage_set_json(int64_t *slot, json_t *v);
/* Store v re-serialised as compact JSON (objects keep their key order). */
void llm_str_set_compact(struct llm_result *res, struct llm_str *s,
    json_t *v);

/* The same conveniences for text read in place (jsonv.h), with the same
 * rules. */
bool llm_str_set_jv(struct llm_result *res, struct llm_str *s, struct jv v);
void llm_str_append_jv(struct llm_result *res, struct llm_str *s,
    struct jv v);
void llm_str_fill_jv(struct llm_result *res, struct llm_str *s, struct jv v);
void llm_usage_set_jv(int64_t *slot, struct jv v);
void llm_reasoning_append_jv(struct llm_result *res, struct llm_choice *c,
    struct jv text);
void llm_choice_add_item_jv(struct llm_result *res, struct llm_choice *c,
    struct jv type, struct jv id);
void llm_result_set_error_jv(struct llm_result *res, struct jv err);

/* Record an in-band error from an object with type / code / message
 * members (or a bare string, taken as the message); ignored for other
 * values and once an error is recorded. */
void llm_result_set_error_json(struct llm_result *res, json_t *err);

/*
 * Render for tests and debugging.  Field names are stable camelCase; absent
 * strings, unset counts and zero notes are left out.  Returns a new
 * reference.
 */
json_t *llm_result_to_json(const struct llm_result *res);

#endif
