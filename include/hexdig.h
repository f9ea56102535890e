/*
 * hexdig.h - the value of one hexadecimal digit, for the three readers of
 * hex text: key digests in the configuration (config_provider.c), \u
 * escapes in JSON (jsonscan.c) and the signature's trailing digit
 * (signature.c).
 */
#ifndef WHYOPS_HEXDIG_H
#define WHYOPS_HEXDIG_H

/* 0-15 for [0-9a-fA-F], -1 for anything else. */
static inline int
hexdig_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
