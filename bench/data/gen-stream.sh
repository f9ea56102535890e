#!/bin/sh
# Regenerates chat-stream.sse: an OpenAI chat.completion.chunk SSE stream of
# about 20 KB (one event per token, a finish chunk, a usage chunk, [DONE]).
#   sh bench/data/gen-stream.sh > bench/data/chat-stream.sse
awk 'BEGIN {
	text = "Use the CLI to list them, then abort the ones you do not need. " \
	    "Run acme storage uploads list --bucket BUCKET --incomplete to print each " \
	    "upload ID, key, start time and the bytes stored so far. Then run acme " \
	    "storage uploads abort --bucket BUCKET --key KEY --upload-id ID for each " \
	    "one. Aborting frees the quota immediately: the parts are deleted at once " \
	    "and the usage figure updates within a minute. To stop this from " \
	    "recurring, add a lifecycle rule that aborts incomplete uploads after one day."
	n = split(text, w, " ")
	pre = "data: {\"id\":\"chatcmpl-AYp3bF2kQx9Lr7TzWm1cVnE4sHdGu\",\"object\":\"chat.completion.chunk\",\"created\":1732752000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":["
	printf "%s{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}]}\n\n", pre
	size = 0; k = 0; tokens = 0
	while (size < 19600) {
		tok = (k == 0 && tokens == 0 ? "" : " ") w[k + 1]
		if (k + 1 == n) tok = tok "\\n\\n"
		line = sprintf("%s{\"index\":0,\"delta\":{\"content\":\"%s\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n", pre, tok)
		printf "%s", line
		size += length(line); tokens++
		k = (k + 1) % n
	}
	printf "%s{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n", pre
	printf "%s],\"usage\":{\"prompt_tokens\":324,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n", pre, tokens, tokens + 324
	printf "data: [DONE]\n\n"
}'
