# whyops-proxy - plain Makefile.
#
#   make              build ./whyops-proxy
#   make check        install missing Debian packages (as root), build, run every test
#   make run          install missing packages, build, run the proxy (CONF=etc/whyops.conf)
#   make asan         the whole test suite against an ASan+UBSan build
#   make tsan         the threaded tests against a TSan build
#   make bench        the benchmark under bench/ (throughput table, per-event delay)
#   make stress-mhd   re-measure the libmicrohttpd race that shapes the drain
#   make install      PREFIX=/usr/local DESTDIR=
#   make deb          Debian packages into build/deb (dpkg-buildpackage)
#   make package-test build the .deb and check its contents, -t and lintian
#
# CPPFLAGS, CFLAGS and LDFLAGS from the environment are honoured (Debian's
# hardening flags come in that way).  WERROR=1 turns warnings into errors (CI).

VERSION    = 0.1.0
PREFIX    ?= /usr/local
SBINDIR   ?= $(PREFIX)/sbin
MANDIR    ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
DESTDIR   ?=
PKG_CONFIG ?= pkg-config
CC        ?= cc

# Build directory: sanitizer builds live beside the normal one.
B         ?= build
SAN       ?=

PKGS       = libmicrohttpd libcurl jansson hiredis gnutls inih
CFLAGS    ?= -O2 -g
WARN       = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
             -Wpointer-arith -Wformat=2 -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN      += -Werror
endif
ifeq ($(SAN),asan)
SANFLAGS   = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
# -fno-builtin-memcpy: GCC expands small bounded memcpy calls inline, and
# TSan does not see those accesses; as calls they are checked.
ifeq ($(SAN),tsan)
SANFLAGS   = -fsanitize=thread -fno-omit-frame-pointer -fno-builtin-memcpy
endif

PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

ALL_CPPFLAGS = -Iinclude -D_GNU_SOURCE -DWHYOPS_VERSION=\"$(VERSION)\" $(CPPFLAGS)
ALL_CFLAGS   = -std=gnu11 -pthread $(WARN) $(CFLAGS) $(SANFLAGS) $(PKG_CFLAGS) -MMD -MP
ALL_LDFLAGS  = -pthread $(LDFLAGS) $(SANFLAGS)

SRCS      := $(filter-out $(EXCLUDE),$(sort $(wildcard src/*.c)))
OBJS      := $(SRCS:src/%.c=$(B)/src/%.o)
LIB_OBJS  := $(filter-out $(B)/src/main.o,$(OBJS))
UNIT_SRCS := $(sort $(wildcard test/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:test/unit/%.c=$(B)/test/%)
MOCK      := $(B)/mock-upstream
BIN       := $(if $(SAN),$(B)/whyops-proxy,whyops-proxy)

.PHONY: all deps check unit integration asan tsan bench stress-mhd run install clean distclean

all: $(BIN)

whyops-proxy $(B)/whyops-proxy: $(OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $(OBJS) $(PKG_LIBS) $(LIBS)

$(B)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(B)/test/%: test/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(CHECK_CFLAGS) -o $@ $< $(LIB_OBJS) $(ALL_LDFLAGS) $(PKG_LIBS) $(CHECK_LIBS)

$(MOCK): test/mock/mock_upstream.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) -std=gnu11 -pthread $(WARN) $(CFLAGS) $(SANFLAGS) -o $@ $< $(ALL_LDFLAGS)

# Installs missing Debian packages when run as root; otherwise names them.
deps:
	@sh scripts/deps.sh

check: deps
	@$(MAKE) --no-print-directory unit integration

unit: $(UNIT_BINS)
	@sh test/run-unit.sh $(UNIT_BINS)

# The official SDKs used by test/integration/test_sdk.py, from the lock file.
SDK_STAMP = test/sdk/node_modules/.package-lock.json
$(SDK_STAMP): test/sdk/package.json test/sdk/package-lock.json
	cd test/sdk && npm ci --no-audit --no-fund

integration: $(BIN) $(MOCK) $(SDK_STAMP)
	WHYOPS_BIN=$(abspath $(BIN)) WHYOPS_MOCK=$(abspath $(MOCK)) WHYOPS_SAN=$(SAN) python3 test/integration/run.py

# WHYOPS_TEST_QUICK: the decoder split tests use event boundaries and spread
# positions instead of every byte position (the plain run does them all).
asan: deps
	@WHYOPS_TEST_QUICK=1 $(MAKE) --no-print-directory B=build-asan SAN=asan unit integration

# The threaded parts: the ring, the dispatcher and the metrics provider table
# (unit tests), and the proxy itself (server, upstream and dispatcher
# threads) under the integration modules marked TSAN = True.
TSAN_UNITS = build-tsan/test/test_ring build-tsan/test/test_events \
             build-tsan/test/test_metrics
tsan: deps
	@$(MAKE) --no-print-directory B=build-tsan SAN=tsan $(TSAN_UNITS) \
	  build-tsan/whyops-proxy build-tsan/mock-upstream
	@sh test/run-unit.sh $(TSAN_UNITS)
	WHYOPS_BIN=$(abspath build-tsan/whyops-proxy) WHYOPS_MOCK=$(abspath build-tsan/mock-upstream) \
	  WHYOPS_SAN=tsan TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1" \
	  python3 test/integration/run.py --tsan

bench: deps whyops-proxy $(MOCK)
	sh bench/run.sh
	WHYOPS_BIN=$(abspath whyops-proxy) WHYOPS_MOCK=$(abspath $(MOCK)) python3 bench/latency.py

# libmicrohttpd's MHD_quiesce_daemon() race (test/stress/mhd_quiesce.c): the
# first line shows it (rounds that died), the second that the proxy's way
# of refusing connections does not have it.  Not part of check (~2 min).
stress-mhd: $(B)/mhd-quiesce
	-$(B)/mhd-quiesce quiesce 1000
	$(B)/mhd-quiesce policy 1000

$(B)/mhd-quiesce: test/stress/mhd_quiesce.c
	@mkdir -p $(B)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(ALL_LDFLAGS) $(PKG_LIBS)

CONF ?= etc/whyops.conf
# The default events file lives in /var/lib/whyops: created when run as root.
run: deps whyops-proxy
	@[ "$$(id -u)" -ne 0 ] || mkdir -p /var/lib/whyops
	./whyops-proxy -c $(CONF)

# The binary, the man pages, the systemd unit (its paths follow SBINDIR and
# SYSCONFDIR), README and the event examples, and $(SYSCONFDIR)/whyops.conf
# unless one exists.  The Debian package does the rest (user and group
# whyops, the conffile's group, /var/lib/whyops); elsewhere do it by hand.
install: SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
install: DOCDIR ?= $(PREFIX)/share/doc/whyops-proxy
install: whyops-proxy
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(DOCDIR)/examples/events
	install -m 0755 whyops-proxy $(DESTDIR)$(SBINDIR)/whyops-proxy
	install -m 0644 man/whyops-proxy.8 $(DESTDIR)$(MANDIR)/man8/whyops-proxy.8
	install -m 0644 man/whyops.conf.5 $(DESTDIR)$(MANDIR)/man5/whyops.conf.5
	install -m 0644 man/whyops-events.7 $(DESTDIR)$(MANDIR)/man7/whyops-events.7
	sed -e 's|/usr/sbin/whyops-proxy|$(SBINDIR)/whyops-proxy|g' \
	  -e 's|/etc/whyops\.conf|$(SYSCONFDIR)/whyops.conf|g' \
	  etc/whyops-proxy.service > $(DESTDIR)$(SYSTEMDUNITDIR)/whyops-proxy.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/whyops-proxy.service
	install -m 0644 README $(DESTDIR)$(DOCDIR)/README
	install -m 0644 doc/events-examples/README doc/events-examples/*.json \
	  $(DESTDIR)$(DOCDIR)/examples/events/
	@if [ ! -e $(DESTDIR)$(SYSCONFDIR)/whyops.conf ]; then \
	  install -d $(DESTDIR)$(SYSCONFDIR); \
	  install -m 0640 etc/whyops.conf $(DESTDIR)$(SYSCONFDIR)/whyops.conf; \
	else echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/whyops.conf"; fi

clean:
	rm -rf build build-asan build-tsan whyops-proxy

distclean: clean
	rm -rf test/sdk/node_modules bench/results

-include $(OBJS:.o=.d)

.PHONY: deb package-test

# Debian packages (.deb, .changes, .buildinfo) into build/deb, built by
# dpkg-buildpackage from a clean copy of the tree in a temporary directory.
# DEB_BUILD_OPTIONS=nocheck skips the tests in debian/rules.
deb:
	sh test/package/build-deb.sh $(abspath $(B))/deb

# Builds the package (nocheck) and checks its contents, its conffiles, the
# packaged binary against the packaged configuration, and lintian.
package-test:
	sh test/package/test_deb.sh
