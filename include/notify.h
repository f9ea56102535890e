/*
 * notify.h - the service manager's readiness protocol (sd_notify(3)),
 * without libsystemd.
 *
 * Under systemd with Type=notify, $NOTIFY_SOCKET names a unix datagram
 * socket ("/path" or "@abstract"); each call sends one datagram of
 * newline-separated VAR=value assignments to it.  When $NOTIFY_SOCKET is
 * unset, empty, of another kind (vsock:) or unreachable, every call does
 * nothing: running outside systemd is not an error, and no failure is
 * reported to the caller.  As with sd_notify(3) the send blocks only while
 * the manager's receive queue is full.  errno is preserved.
 *
 * Threads: any thread may call; each call opens and closes its own socket.
 * systemd accepts messages only from the main process (NotifyAccess=main),
 * which every thread of the daemon belongs to.
 */
#ifndef WHYOPS_NOTIFY_H
#define WHYOPS_NOTIFY_H

/* The longest STATUS= text sent; a longer one is cut at this many bytes. */
#define NOTIFY_STATUS_MAX 256

/* READY=1: start-up is complete (listeners, upstream thread and event
 * dispatcher are running), or a reload announced by notify_reloading()
 * has finished. */
void notify_ready(void);

/* STOPPING=1: shutdown has begun. */
void notify_stopping(void);

/* RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC, as Type=notify-reload
 * requires): a reload has begun; follow it with notify_ready(). */
void notify_reloading(void);

/* STATUS=text: a one-line state shown by `systemctl status`.  Newlines in
 * the formatted text become spaces. */
void notify_status(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

#endif
