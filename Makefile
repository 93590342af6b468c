# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# loopless: non-recursive build (libbpf-bootstrap conventions).
#   make            build/looplessd, build/loopless, test helpers
#   make deps       install build and test dependencies (apt-get, npm ci; idempotent)
#   make install    PREFIX=/usr/local DESTDIR= : binaries, systemd unit, man pages,
#                   /etc/loopless/looplessd.conf (kept if present); make uninstall
#   make check      no root needed: clang-format, shellcheck, man pages, manifests, Dockerfile
#   make test       unit + integration tests (root, real kernel); T='mesh_* exec'
#                   or T=test_key:test_reenter* runs only those (tests/run.sh --list)
#   make demo       a redirected local connection and its counters
#   make fuzz       the configuration parser under libFuzzer for FUZZ_SECONDS (60)
#   make soak       many connections, resets and daemon restarts for SOAK_SECONDS (120)
#   make bench      the comparison: lo vs local IP vs loopless vs UDS vs pipe
#                   (BENCH_ARGS="--full" or "--quick --modes lo,redirect-lo" ...)
#   make SANITIZE=1 build with ASan/UBSan into build-sanitize/ (make test SANITIZE=1)
#   V=1             show full commands

# A sanitized build goes to a directory of its own: mixing its objects with a
# plain build's would silently keep the old ones.
ifeq ($(SANITIZE),1)
OUTPUT ?= build-sanitize
else
OUTPUT ?= build
endif
OBJ := $(OUTPUT)/obj
CLANG ?= clang
LLVM_STRIP ?= llvm-strip
BPFTOOL ?= bpftool
CC ?= cc
PKG_CONFIG ?= pkg-config
ARCH := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/;s/ppc64le/powerpc/;s/mips.*/mips/')
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0)

PREFIX ?= /usr/local
DESTDIR ?=

# CFLAGS and LDFLAGS are the caller's (make CFLAGS='-O0 -g -Wshadow'); what
# the build needs regardless is kept apart and always added.
CFLAGS ?= -O2 -g
LL_CPPFLAGS := -std=gnu11 -D_GNU_SOURCE -DLOOPLESS_VERSION='"$(VERSION)"' -Ibpf -Idaemon -I$(OBJ)
LL_WARN := -Wall -Wextra -Werror
ifeq ($(SANITIZE),1)
LL_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer
endif
LL_CFLAGS = $(LL_CPPFLAGS) $(LL_WARN) $(LL_SAN) $(CFLAGS)
LL_LDFLAGS = $(LL_SAN) $(LDFLAGS)

LIBBPF_LIBS = $(shell $(PKG_CONFIG) --libs libbpf 2>/dev/null || echo -lbpf -lelf -lz)
INIH_LIBS = $(shell $(PKG_CONFIG) --libs inih 2>/dev/null || echo -linih)
SYSTEMD_LIBS = $(shell $(PKG_CONFIG) --libs libsystemd 2>/dev/null || echo -lsystemd)
CMOCKA_LIBS = $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)
MHD_LIBS = $(shell $(PKG_CONFIG) --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)

BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -Wall -Werror -Ibpf -I$(OBJ)

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

.DELETE_ON_ERROR:
.SECONDARY:
.PHONY: all deps test check unit integration demo bench install uninstall clean format fuzz soak known-issues

APPS := $(OUTPUT)/looplessd $(OUTPUT)/loopless
TEST_BINS := $(OUTPUT)/lltraffic $(OUTPUT)/llprobe $(OUTPUT)/llsidecar $(OUTPUT)/fuzz_config \
	$(OUTPUT)/test_config $(OUTPUT)/test_config_ini $(OUTPUT)/test_config_syntax \
	$(OUTPUT)/test_options $(OUTPUT)/test_key \
	$(OUTPUT)/test_stats
BENCH_BINS := $(OUTPUT)/loopless-bench

all: $(APPS) $(TEST_BINS) $(BENCH_BINS)

# Objects shared by the daemon and the CLI, one file per concern.
COMMON_OBJS := $(addprefix $(OBJ)/,config.o config_ini.o options.o pins.o cgroup.o stats.o log.o \
	datapath.o inspect.o netns.o owners.o)

$(OBJ) $(OUTPUT):
	$(Q)mkdir -p $@

$(OBJ)/vmlinux.h: | $(OBJ)
	$(call msg,GEN,$@)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@

$(OBJ)/loopless.bpf.o: bpf/loopless.bpf.c bpf/loopless.h $(wildcard bpf/*.bpf.h) $(OBJ)/vmlinux.h | $(OBJ)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp
	$(Q)$(LLVM_STRIP) -g $@.tmp
	$(Q)$(BPFTOOL) gen object $@ $@.tmp
	$(Q)rm -f $@.tmp

$(OBJ)/loopless.skel.h: $(OBJ)/loopless.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name loopless_bpf > $@

$(OBJ)/%.o: daemon/%.c $(wildcard daemon/*.h) bpf/loopless.h | $(OBJ)
	$(call msg,CC,$@)
	$(Q)$(CC) $(LL_CFLAGS) -c $< -o $@

# Files that include the skeleton.
$(OBJ)/looplessd.o $(OBJ)/datapath.o $(OBJ)/inspect.o: $(OBJ)/loopless.skel.h

$(OUTPUT)/looplessd: $(OBJ)/looplessd.o $(OBJ)/looplessd_args.o $(OBJ)/metrics.o $(COMMON_OBJS) | $(OUTPUT)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LL_LDFLAGS) $^ $(LIBBPF_LIBS) $(INIH_LIBS) $(SYSTEMD_LIBS) $(MHD_LIBS) -lcap -o $@

$(OUTPUT)/loopless: $(OBJ)/cli.o $(OBJ)/procs.o $(OBJ)/join.o $(OBJ)/json.o $(COMMON_OBJS) | $(OUTPUT)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LL_LDFLAGS) $^ $(LIBBPF_LIBS) $(INIH_LIBS) -o $@

# The helpers the test tools and the bench share (tests/lib): the test stream, socket I/O, the
# number grammar of options, messages, clock, addresses; an object each, linked into the tools
# that use it. The bench links them too: it must read and write as the tests do (the I/O
# loopless redirects into, EAGAIN retried and counted) and take the same sizes, not a copy
# that drifts. A tool with several files has a directory of its own; -Itests makes
# "lib/io.h" the shared header whichever directory includes it.
testlib = $(patsubst %,$(OBJ)/tests/lib/%.o,$(1))
tool_objs = $(patsubst %.c,$(OBJ)/%.o,$(wildcard $(1)/*.c))
TOOL_HDRS := $(wildcard tests/lib/*.h tests/lltraffic/*.h tests/llprobe/*.h tests/llsidecar/*.h \
	bench/loopless-bench/*.h)
LLTRAFFIC_OBJS := $(call tool_objs,tests/lltraffic) $(call testlib,stream io number fail clock addr)
LLPROBE_OBJS := $(call tool_objs,tests/llprobe) $(call testlib,stream io number fail clock)
LLSIDECAR_OBJS := $(call tool_objs,tests/llsidecar) $(call testlib,io number fail clock addr)
BENCH_OBJS := $(call tool_objs,bench/loopless-bench) $(call testlib,io number fail clock addr)
TOOL_OBJS := $(sort $(LLTRAFFIC_OBJS) $(LLPROBE_OBJS) $(LLSIDECAR_OBJS) $(BENCH_OBJS))

$(TOOL_OBJS): $(OBJ)/%.o: %.c $(TOOL_HDRS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LL_CFLAGS) -Itests -c $< -o $@

$(OUTPUT)/lltraffic: $(LLTRAFFIC_OBJS) | $(OUTPUT)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LL_LDFLAGS) $^ -o $@ -lpthread

$(OUTPUT)/llprobe: $(LLPROBE_OBJS) | $(OUTPUT)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LL_LDFLAGS) $^ -o $@ -lpthread

$(OUTPUT)/llsidecar: $(LLSIDECAR_OBJS) | $(OUTPUT)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LL_LDFLAGS) $^ -o $@

# libFuzzer target: clang only, with its own sanitizer flags (not CFLAGS).
FUZZ_CFLAGS := -g -O1 -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE -Ibpf -Idaemon \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
$(OUTPUT)/fuzz_config: tests/fuzz/fuzz_config.c daemon/config.c daemon/config_ini.c daemon/config.h \
		| $(OUTPUT)
	$(call msg,FUZZ-CC,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $(filter %.c,$^) -o $@ $(INIH_LIBS)

$(OUTPUT)/loopless-bench: $(BENCH_OBJS) | $(OUTPUT)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LL_LDFLAGS) $^ -o $@ -lpthread -lm

# The configuration's tests follow its files: the model, the INI adapter
# (with inih), the option errors. config_fixture.h is what the first two share.
$(OUTPUT)/test_config: tests/unit/test_config.c tests/unit/config_fixture.h $(OBJ)/config.o \
		| $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(LL_CFLAGS) $(filter-out %.h,$^) -o $@ $(LL_LDFLAGS) $(CMOCKA_LIBS)

$(OUTPUT)/test_config_ini: tests/unit/test_config_ini.c tests/unit/config_fixture.h \
		$(OBJ)/config_ini.o $(OBJ)/config.o | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(LL_CFLAGS) $(filter-out %.h,$^) -o $@ $(LL_LDFLAGS) $(INIH_LIBS) $(CMOCKA_LIBS)

$(OUTPUT)/test_config_syntax: tests/unit/test_config_syntax.c tests/unit/config_fixture.h \
		$(OBJ)/config_ini.o $(OBJ)/config.o | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(LL_CFLAGS) $(filter-out %.h,$^) -o $@ $(LL_LDFLAGS) $(INIH_LIBS) $(CMOCKA_LIBS)

$(OUTPUT)/test_options: tests/unit/test_options.c $(OBJ)/options.o $(OBJ)/config.o | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(LL_CFLAGS) $^ -o $@ $(LL_LDFLAGS) $(CMOCKA_LIBS)

$(OUTPUT)/test_stats: tests/unit/test_stats.c $(OBJ)/stats.o | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(LL_CFLAGS) $^ -o $@ $(LL_LDFLAGS) $(LIBBPF_LIBS) $(CMOCKA_LIBS)

$(OUTPUT)/test_key: tests/unit/test_key.c bpf/loopless.h | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(LL_CFLAGS) $< -o $@ $(LL_LDFLAGS) $(CMOCKA_LIBS)

# Debian 12 packages for building, testing and benchmarking. Only what is
# missing is installed, so a second run changes nothing. redis, nginx, wrk,
# iperf3 and curl are the real applications the integration tests run over
# loopless (each in the test's own netns, on its own ports and temp config;
# where no init system runs, installing them starts no service). iptables
# (iptables and ip6tables, nft backend) sets up the mesh tests' Istio- and
# Linkerd-shaped REDIRECT rules, only inside the tests' own netns. golang-go
# builds the Go proxies of tests/readers.sh (standard library only, offline),
# haproxy is one of its splicing proxies. Besides them:
# promtool (tests check /metrics with it) is taken out of Debian's prometheus
# package into .deps/bin rather than installing that package, which would
# also enable a Prometheus server; the manifest and Dockerfile checks use the
# npm packages pinned in package-lock.json (node_modules/).
DEPS := make clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config \
	libinih-dev libsystemd-dev libcap-dev libcmocka-dev libmicrohttpd-dev iproute2 procps \
	util-linux jq gnuplot-nox iperf3 coreutils curl python3 systemd systemd-container groff-base \
	clang-format shellcheck \
	man-db yamllint nodejs redis-server redis-tools nginx-light wrk iptables golang-go haproxy
deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "deps: all installed"; fi
	@if command -v promtool >/dev/null || [ -x .deps/bin/promtool ]; then \
		echo "deps: promtool present"; \
	else \
		echo "deps: promtool from Debian's prometheus package into .deps/bin"; \
		d=$$(mktemp -d) && (cd $$d && { apt-get download -q prometheus 2>/dev/null || \
			{ apt-get update -qq && apt-get download -q prometheus; }; }) && \
		dpkg-deb --fsys-tarfile $$d/prometheus_*.deb | tar -x -C $$d ./usr/bin/promtool && \
		mkdir -p .deps/bin && mv $$d/usr/bin/promtool .deps/bin/ && rm -rf $$d; \
	fi
	@if [ node_modules/.package-lock.json -nt package-lock.json ]; then \
		echo "deps: node_modules up to date"; \
	else \
		npm ci --no-audit --no-fund --loglevel=error; \
	fi

# What needs no root: formatting, shellcheck, man pages, manifests, Dockerfile.
check: $(APPS)
	$(Q)tests/check.sh $(OUTPUT)

# T=PATTERN...: only the tests it names (globs, see tests/run.sh --list).
test: all
	$(Q)set -f; tests/run.sh $(OUTPUT) $(T)

unit: $(OUTPUT)/test_config $(OUTPUT)/test_config_ini $(OUTPUT)/test_config_syntax \
	$(OUTPUT)/test_options $(OUTPUT)/test_key \
		$(OUTPUT)/test_stats
	$(Q)tests/run.sh --unit-only $(OUTPUT)

integration: all
	$(Q)tests/run.sh --integration-only $(OUTPUT)

# New inputs go to $(OUTPUT)/fuzz-corpus (tests/fuzz/corpus, the seeds, is only read);
# a crash leaves $(OUTPUT)/fuzz-crash-* to replay with build/fuzz_config FILE.
FUZZ_SECONDS ?= 60
fuzz: $(OUTPUT)/fuzz_config
	$(Q)mkdir -p $(OUTPUT)/fuzz-corpus
	$(Q)$(OUTPUT)/fuzz_config -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 \
		-artifact_prefix=$(OUTPUT)/fuzz- -print_final_stats=1 \
		$(OUTPUT)/fuzz-corpus tests/fuzz/corpus

SOAK_SECONDS ?= 120
soak: all
	$(Q)tests/soak.sh $(OUTPUT) $(SOAK_SECONDS)

# Reproducers of open problems (README "Kernel behaviours"); they report, not gate.
known-issues: all
	$(Q)tests/known-issues.sh $(OUTPUT)

demo: all
	$(Q)tests/demo.sh $(OUTPUT)

BENCH_ARGS ?=
bench: all
	$(Q)bench/run.sh --build $(OUTPUT) $(BENCH_ARGS)

# Installation. The unit's ExecStart follows SBINDIR; the configuration
# goes to /etc/loopless (where looplessd looks) and is never overwritten.
# systemd reads units from both /usr/lib and /usr/local/lib/systemd/system.
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
CONFDIR := /etc/loopless
PIN_DIR ?= /sys/fs/bpf/loopless

install: $(APPS)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(CONFDIR)
	install -m 0755 $(OUTPUT)/looplessd $(OUTPUT)/loopless $(DESTDIR)$(SBINDIR)/
	sed 's|/usr/local/sbin/|$(SBINDIR)/|g' deploy/looplessd.service \
		> $(DESTDIR)$(UNITDIR)/looplessd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/looplessd.service
	install -m 0644 deploy/loopless.slice $(DESTDIR)$(UNITDIR)/loopless.slice
	install -m 0644 man/looplessd.8 man/loopless.8 $(DESTDIR)$(MANDIR)/man8/
	test -e $(DESTDIR)$(CONFDIR)/looplessd.conf || \
		install -m 0644 config/looplessd.conf $(DESTDIR)$(CONFDIR)/looplessd.conf
	@[ -n "$(DESTDIR)" ] || [ ! -d /run/systemd/system ] || \
		echo "next: systemctl daemon-reload && systemctl enable --now looplessd"

# On the running system (no DESTDIR) first stop the service and remove the
# datapath (`loopless uninstall`, when one is pinned in PIN_DIR). The
# configuration stays if it was edited.
uninstall:
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ] && \
		systemctl is-enabled --quiet looplessd.service 2>/dev/null; then \
		echo "systemctl disable --now looplessd"; systemctl disable --now looplessd.service; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ -d "$(PIN_DIR)" ] && [ -x $(SBINDIR)/loopless ]; then \
		echo "$(SBINDIR)/loopless --pin-dir $(PIN_DIR) uninstall"; \
		$(SBINDIR)/loopless --pin-dir $(PIN_DIR) uninstall; \
	fi
	rm -f $(DESTDIR)$(SBINDIR)/looplessd $(DESTDIR)$(SBINDIR)/loopless \
		$(DESTDIR)$(UNITDIR)/looplessd.service $(DESTDIR)$(UNITDIR)/loopless.slice \
		$(DESTDIR)$(MANDIR)/man8/looplessd.8 $(DESTDIR)$(MANDIR)/man8/loopless.8
	@if cmp -s config/looplessd.conf $(DESTDIR)$(CONFDIR)/looplessd.conf; then \
		rm -f $(DESTDIR)$(CONFDIR)/looplessd.conf; rmdir $(DESTDIR)$(CONFDIR) 2>/dev/null; \
	elif [ -e $(DESTDIR)$(CONFDIR)/looplessd.conf ]; then \
		echo "kept $(DESTDIR)$(CONFDIR)/looplessd.conf (edited; remove it by hand)"; \
	fi; true
	@[ -n "$(DESTDIR)" ] || [ ! -d /run/systemd/system ] || systemctl daemon-reload

format:
	clang-format -i $(wildcard bpf/*.[ch] daemon/*.[ch] tests/*/*.[ch] tests/*/*/*.[ch] \
		bench/*/*.[ch])

clean:
	$(call msg,CLEAN)
	$(Q)rm -rf $(OUTPUT)
