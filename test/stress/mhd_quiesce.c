/*
 * mhd_quiesce.c - does MHD_quiesce_daemon() abort with busy pool threads?
 *
 * Why the proxy does not call it (server_daemon.c, server_quiesce()): in
 * libmicrohttpd 0.9.75, MHD_quiesce_daemon() deletes the listening socket
 * from each pool thread's epoll set while that thread, seeing the quiesced
 * flag, may delete it as well; the loser gets ENOENT and the library calls
 * MHD_PANIC ("Failed to remove listen FD from epoll set").  The proxy
 * refuses connections with its accept policy callback instead.
 *
 * Each round, in a child process: a 2-thread epoll pool (the proxy's
 * flags), 8 client threads making keep-alive requests as fast as they can,
 * then after 20-40 ms either MHD_quiesce_daemon() ("quiesce") or the accept
 * policy flag ("policy"), then MHD_stop_daemon().  Prints how many rounds
 * died of a signal.  On Debian 12 (0.9.75), 2 cores: quiesce 13 of 3,000,
 * policy 0 of 3,000.  Re-run it on a newer libmicrohttpd before going back
 * to MHD_quiesce_daemon() (which would let the kernel refuse connections).
 *
 *   make stress-mhd                 (quiesce and policy, 1,000 rounds each)
 *   build/mhd-quiesce quiesce 3000
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLIENTS 8

static unsigned short port;
static atomic_bool stop, refuse;

static enum MHD_Result
accept_policy(void *cls, const struct sockaddr *addr, socklen_t len)
{
	(void)cls;
	(void)addr;
	(void)len;
	return atomic_load(&refuse) ? MHD_NO : MHD_YES;
}

static enum MHD_Result
answer(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	static char body[] = "ok";
	struct MHD_Response *r;
	enum MHD_Result ret;

	(void)cls; (void)url; (void)method; (void)version;
	(void)upload_data; (void)upload_data_size; (void)con_cls;
	r = MHD_create_response_from_buffer(2, body, MHD_RESPMEM_PERSISTENT);
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static void *
client(void *arg)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct timeval tv = { 0, 50 * 1000 };
	char buf[4096];

	(void)arg;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	while (!atomic_load(&stop)) {
		int s = socket(AF_INET, SOCK_STREAM, 0);

		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0)
			for (int i = 0; i < 50 && !atomic_load(&stop); i++)
				if (write(s, req, sizeof(req) - 1) < 0 ||
				    read(s, buf, sizeof(buf)) <= 0)
					break;
		close(s);
	}
	return NULL;
}

static int
round_once(bool quiesce)
{
	struct MHD_Daemon *d;
	pthread_t t[CLIENTS];
	MHD_socket fd = MHD_INVALID_SOCKET;

	d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD |
	    MHD_ALLOW_SUSPEND_RESUME, 0, accept_policy, NULL, answer, NULL,
	    MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_END);
	if (d == NULL)
		return 2;
	port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
	for (int i = 0; i < CLIENTS; i++)
		pthread_create(&t[i], NULL, client, NULL);
	usleep(20 * 1000 + (unsigned)(rand() % (20 * 1000)));
	if (quiesce)
		fd = MHD_quiesce_daemon(d);
	else
		atomic_store(&refuse, true);
	atomic_store(&stop, true);
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(t[i], NULL);
	MHD_stop_daemon(d);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	return 0;
}

int
main(int argc, char **argv)
{
	bool quiesce;
	int rounds, died = 0;

	if (argc != 3 || (strcmp(argv[1], "quiesce") != 0 &&
	    strcmp(argv[1], "policy") != 0) || (rounds = atoi(argv[2])) <= 0) {
		fprintf(stderr, "usage: mhd-quiesce quiesce|policy rounds\n");
		return 2;
	}
	quiesce = strcmp(argv[1], "quiesce") == 0;
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < rounds; i++) {
		pid_t pid = fork();
		int st;

		if (pid == 0) {
			srand((unsigned)i);
			_exit(round_once(quiesce));
		}
		if (pid < 0 || waitpid(pid, &st, 0) != pid)
			return 2;
		if (WIFSIGNALED(st))
			died++;
	}
	printf("%s: %d of %d rounds died of a signal\n", argv[1], died, rounds);
	return died > 0 ? 1 : 0;
}
