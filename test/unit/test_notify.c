/*
 * test_notify.c - notify.c against a real receiver: a unix datagram socket
 * bound in a temporary directory (or in the abstract namespace), named by
 * $NOTIFY_SOCKET as systemd would.  Each datagram is read back and checked
 * byte for byte; calls that must do nothing (variable unset, empty, not a
 * path, too long, nobody listening) must leave the socket empty and errno
 * unchanged.
 *
 * Each test runs in its own forked child (Check's default), so setenv()
 * does not leak from one test into the next.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"

struct rx {
	int fd;
	char dir[64];			/* "" for an abstract socket */
	char path[96];			/* fits sun_path (108) */
};

/* A receiver bound to a fresh file in a temporary directory. */
static void
rx_open_path(struct rx *rx)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	snprintf(rx->dir, sizeof(rx->dir), "/tmp/whyops-notify-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(rx->dir));
	snprintf(rx->path, sizeof(rx->path), "%s/notify", rx->dir);
	rx->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(rx->fd, 0);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", rx->path);
	ck_assert_int_eq(bind(rx->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", rx->path, 1), 0);
}

/* A receiver in the abstract namespace, bound the way systemd binds it:
 * the address length covers the name and no trailing NUL. */
static void
rx_open_abstract(struct rx *rx)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	size_t n;

	rx->dir[0] = '\0';
	snprintf(rx->path, sizeof(rx->path), "@whyops-test-notify/%ld-%ld",
	    (long)getpid(), (long)time(NULL));
	n = strlen(rx->path);
	memcpy(addr.sun_path + 1, rx->path + 1, n - 1);
	rx->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(rx->fd, 0);
	ck_assert_int_eq(bind(rx->fd, (struct sockaddr *)&addr,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)), 0);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", rx->path, 1), 0);
}

static void
rx_close(struct rx *rx)
{
	close(rx->fd);
	if (rx->dir[0] != '\0') {
		unlink(rx->path);
		rmdir(rx->dir);
	}
}

/* The next datagram, NUL-terminated; fails the test after 2 s. */
static size_t
rx_recv(struct rx *rx, char *buf, size_t size)
{
	struct pollfd pfd = { .fd = rx->fd, .events = POLLIN };
	ssize_t n;

	ck_assert_msg(poll(&pfd, 1, 2000) == 1, "no datagram arrived");
	n = recv(rx->fd, buf, size - 1, 0);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	return (size_t)n;
}

static void
rx_expect(struct rx *rx, const char *want)
{
	char buf[1024];
	size_t n = rx_recv(rx, buf, sizeof(buf));

	ck_assert_uint_eq(n, strlen(want));
	ck_assert_str_eq(buf, want);
}

static void
rx_expect_nothing(struct rx *rx)
{
	struct pollfd pfd = { .fd = rx->fd, .events = POLLIN };

	ck_assert_int_eq(poll(&pfd, 1, 100), 0);
}

static unsigned long long
now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL;
}

/* RELOADING=1 then MONOTONIC_USEC within [lo, hi], and nothing else. */
static void
rx_expect_reloading(struct rx *rx, unsigned long long lo, unsigned long long hi)
{
	static const char head[] = "RELOADING=1\nMONOTONIC_USEC=";
	char buf[256], *end;
	unsigned long long usec;

	rx_recv(rx, buf, sizeof(buf));
	ck_assert_msg(strncmp(buf, head, sizeof(head) - 1) == 0, "got %s", buf);
	errno = 0;
	usec = strtoull(buf + sizeof(head) - 1, &end, 10);
	ck_assert_int_eq(errno, 0);
	ck_assert_msg(end != buf + sizeof(head) - 1 && *end == '\0', "got %s", buf);
	ck_assert_msg(usec >= lo && usec <= hi, "MONOTONIC_USEC %llu not in "
	    "[%llu, %llu]", usec, lo, hi);
}

/* The whole sequence main.c sends, in order. */
static void
sequence(struct rx *rx)
{
	unsigned long long lo, hi;

	notify_status("listening on %s:%d", "127.0.0.1", 8080);
	notify_ready();
	lo = now_usec();
	notify_reloading();
	hi = now_usec();
	notify_ready();
	notify_stopping();
	rx_expect(rx, "STATUS=listening on 127.0.0.1:8080");
	rx_expect(rx, "READY=1");
	rx_expect_reloading(rx, lo, hi);
	rx_expect(rx, "READY=1");
	rx_expect(rx, "STOPPING=1");
	rx_expect_nothing(rx);
}

START_TEST(path_socket)
{
	struct rx rx;

	rx_open_path(&rx);
	sequence(&rx);
	rx_close(&rx);
}
END_TEST

START_TEST(abstract_socket)
{
	struct rx rx;

	rx_open_abstract(&rx);
	sequence(&rx);
	rx_close(&rx);
}
END_TEST

/* The abstract name is matched exactly: "@name" must not reach a socket
 * bound as "@name" plus a trailing NUL, nor one called "@nam". */
START_TEST(abstract_exact_length)
{
	struct rx rx;
	char longer[160];

	rx_open_abstract(&rx);
	snprintf(longer, sizeof(longer), "%sx", rx.path);
	setenv("NOTIFY_SOCKET", longer, 1);
	notify_ready();
	rx_expect_nothing(&rx);
	rx.path[strlen(rx.path) - 1] = '\0';
	setenv("NOTIFY_SOCKET", rx.path, 1);
	notify_ready();
	rx_expect_nothing(&rx);
	rx_close(&rx);
}
END_TEST

START_TEST(status_newlines_and_empty)
{
	struct rx rx;

	rx_open_path(&rx);
	notify_status("line one\nline two\r\n");
	notify_status("%s", "");
	rx_expect(&rx, "STATUS=line one line two  ");
	rx_expect(&rx, "STATUS=");
	rx_close(&rx);
}
END_TEST

/* Long texts are cut at NOTIFY_STATUS_MAX bytes, and never inside a UTF-8
 * character (systemd drops a STATUS= that is not valid UTF-8). */
START_TEST(status_truncated)
{
	char text[NOTIFY_STATUS_MAX * 2], want[NOTIFY_STATUS_MAX + 16];
	struct rx rx;

	rx_open_path(&rx);
	memset(text, 'a', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	notify_status("%s", text);
	snprintf(want, sizeof(want), "STATUS=%.*s", NOTIFY_STATUS_MAX, text);
	rx_expect(&rx, want);

	/* exactly NOTIFY_STATUS_MAX bytes: sent whole */
	text[NOTIFY_STATUS_MAX] = '\0';
	notify_status("%s", text);
	rx_expect(&rx, want);

	/* a 2-byte character straddling the limit is left out whole */
	memset(text, 'a', NOTIFY_STATUS_MAX - 1);
	memcpy(text + NOTIFY_STATUS_MAX - 1, "\xc3\xa9zzz", 6);
	notify_status("%s", text);
	snprintf(want, sizeof(want), "STATUS=%.*s", NOTIFY_STATUS_MAX - 1, text);
	rx_expect(&rx, want);

	/* ...and one that ends exactly at the limit is kept */
	memset(text, 'a', NOTIFY_STATUS_MAX - 2);
	memcpy(text + NOTIFY_STATUS_MAX - 2, "\xc3\xa9zzz", 6);
	notify_status("%s", text);
	snprintf(want, sizeof(want), "STATUS=%.*s", NOTIFY_STATUS_MAX, text);
	rx_expect(&rx, want);
	rx_close(&rx);
}
END_TEST

/* Outside systemd, and with anything but a path or abstract name: nothing
 * is sent, nothing fails, errno is left alone. */
START_TEST(unset_or_invalid)
{
	static const char *const bad[] = {
		"", "@", "/", "relative/notify", "vsock:2:1234",
	};
	char toolong[200];
	struct rx rx;

	rx_open_path(&rx);
	unsetenv("NOTIFY_SOCKET");
	errno = EINTR;
	notify_ready();
	notify_stopping();
	notify_reloading();
	notify_status("x");
	ck_assert_int_eq(errno, EINTR);
	rx_expect_nothing(&rx);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("NOTIFY_SOCKET", bad[i], 1);
		errno = EINTR;
		notify_ready();
		notify_status("x");
		ck_assert_int_eq(errno, EINTR);
	}
	memset(toolong, 'x', sizeof(toolong) - 1);
	toolong[0] = '/';
	toolong[sizeof(toolong) - 1] = '\0';
	setenv("NOTIFY_SOCKET", toolong, 1);
	notify_ready();
	toolong[0] = '@';
	setenv("NOTIFY_SOCKET", toolong, 1);
	notify_ready();
	rx_expect_nothing(&rx);
	rx_close(&rx);
}
END_TEST

/* The socket is gone (the manager restarted, or never existed). */
START_TEST(nobody_listening)
{
	struct rx rx;

	rx_open_path(&rx);
	rx_close(&rx);			/* unlinks the path */
	errno = 0;
	notify_ready();
	notify_status("still %s", "running");
	ck_assert_int_eq(errno, 0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("notify");
	TCase *tc = tcase_create("notify");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, path_socket);
	tcase_add_test(tc, abstract_socket);
	tcase_add_test(tc, abstract_exact_length);
	tcase_add_test(tc, status_newlines_and_empty);
	tcase_add_test(tc, status_truncated);
	tcase_add_test(tc, unset_or_invalid);
	tcase_add_test(tc, nobody_listening);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
