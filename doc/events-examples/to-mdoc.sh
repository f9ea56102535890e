#!/bin/sh
# Prints the EXAMPLES section of whyops-events(7) from the example events
# in this folder (see README): one literal display per event type, with
# backslashes escaped for roff.
dir=$(dirname "$0")

example() {
	printf '.Ss %s\n%s\n.Bd -literal -offset indent\n' "$1" "$2"
	sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/" "$dir/$1.json"
	printf '\n.Ed\n'
}

cat <<'EOF'
.Sh EXAMPLES
Each example is one event exactly as the proxy builds it, from a call made
up by the unit tests, indented here for reading; sinks write each event on
one line.
All belong to one made-up trace: a call that started at
2026-11-28T00:10:00.123Z and took 412.5 ms, built two seconds later.
EOF
example user_message 'The first event of a chat completion with a system prompt:'
example tool_result 'An Anthropic request whose last user message returns a failed tool result:'
example llm_thinking 'The reasoning of an Anthropic answer with extended thinking:'
example llm_response 'A streamed chat completion that called a tool:'
example error 'A chat completion refused by the upstream with HTTP 429:'
example embedding_request 'An embeddings request for two texts:'
example embedding_response 'Its answer: the vectors are counted, not sent:'
