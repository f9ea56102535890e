/*
 * log.h - leveled logging to stderr.
 *
 * One line per message: "2026-11-28T00:10:00.123Z LEVEL message".  Safe to
 * call from any thread (a single write(2) per line).  Callers must never
 * pass secrets: keys, provider credentials and Authorization headers are
 * never formatted into a log line anywhere in the program.
 */
#ifndef WHYOPS_LOG_H
#define WHYOPS_LOG_H

#include "config.h"

void log_set_level(enum log_level level);
int log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_enabled(LOG_LEVEL_DEBUG)) \
	log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)

#endif
