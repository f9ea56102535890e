/*
 * notify.c - sd_notify(3) without libsystemd (see notify.h).
 *
 * The protocol is one AF_UNIX SOCK_DGRAM datagram per notification, sent
 * to the address in $NOTIFY_SOCKET:
 *   "/run/systemd/notify"  a socket in the file system;
 *   "@name"                a socket in the abstract namespace: the '@'
 *                          stands for the leading NUL byte, and the
 *                          address length covers the name exactly (no
 *                          trailing NUL), as systemd binds it.
 * The receiver learns our pid from SCM_CREDENTIALS itself (it sets
 * SO_PASSCRED), so nothing but the text is sent.  Other forms (systemd
 * 253's "vsock:CID:PORT") are not supported and treated as unset.
 *
 * Why not libsystemd: four messages do not justify a shared-library
 * dependency, and the daemon must run unchanged outside systemd.
 *
 * Every call is self-contained (socket, sendto, close) so that any thread
 * may notify without shared state; notifications are rare (start, reload,
 * stop).  Failures are ignored: the service manager's view is advisory,
 * and the proxy must not stop serving because it is unreachable.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"

/*
 * Fills *addr from $NOTIFY_SOCKET and returns the address length, or 0 when
 * the variable is unset or not a path or abstract name that fits.
 */
static socklen_t
notify_address(struct sockaddr_un *addr)
{
	const char *e = getenv("NOTIFY_SOCKET");
	size_t len;

	if (e == NULL || (e[0] != '/' && e[0] != '@') || e[1] == '\0')
		return 0;
	len = strlen(e);
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (e[0] == '@') {
		if (len > sizeof(addr->sun_path))
			return 0;
		memcpy(addr->sun_path + 1, e + 1, len - 1);
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	}
	if (len >= sizeof(addr->sun_path))
		return 0;
	memcpy(addr->sun_path, e, len + 1);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

/* Sends msg (len bytes) as one datagram; silently nothing on any failure. */
static void
notify_send(const char *msg, size_t len)
{
	struct sockaddr_un addr;
	socklen_t alen;
	int saved = errno, fd;

	if ((alen = notify_address(&addr)) == 0)
		return;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		(void)sendto(fd, msg, len, MSG_NOSIGNAL,
		    (const struct sockaddr *)&addr, alen);
		close(fd);
	}
	errno = saved;
}

void
notify_ready(void)
{
	static const char msg[] = "READY=1";

	notify_send(msg, sizeof(msg) - 1);
}

void
notify_stopping(void)
{
	static const char msg[] = "STOPPING=1";

	notify_send(msg, sizeof(msg) - 1);
}

void
notify_reloading(void)
{
	struct timespec ts;
	char msg[64];
	int n;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return;
	n = snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL);
	if (n > 0 && (size_t)n < sizeof(msg))
		notify_send(msg, (size_t)n);
}

void
notify_status(const char *fmt, ...)
{
	static const char prefix[] = "STATUS=";
	enum { P = sizeof(prefix) - 1 };
	char msg[P + NOTIFY_STATUS_MAX + 2];	/* one byte past the cut */
	size_t len;
	va_list ap;
	int saved = errno, n;

	if (getenv("NOTIFY_SOCKET") == NULL)
		return;			/* skip the formatting too */
	memcpy(msg, prefix, P);
	va_start(ap, fmt);
	n = vsnprintf(msg + P, NOTIFY_STATUS_MAX + 2, fmt, ap);
	va_end(ap);
	if (n >= 0) {
		len = (size_t)n;
		/* systemd ignores a STATUS= that is not UTF-8: cut between
		 * characters, not inside one (msg[P + MAX] is the byte after
		 * the cut, since one more than MAX was formatted) */
		if (len > NOTIFY_STATUS_MAX)
			for (len = NOTIFY_STATUS_MAX;
			    len > 0 && ((unsigned char)msg[P + len] & 0xc0) == 0x80;
			    len--)
				;
		/* one assignment per line: a newline would start another */
		for (size_t i = 0; i < len; i++)
			if (msg[P + i] == '\n' || msg[P + i] == '\r')
				msg[P + i] = ' ';
		notify_send(msg, P + len);
	}
	errno = saved;
}
