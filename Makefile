# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# loopless: non-recursive build (libbpf-bootstrap conventions).
#   make            build/looplessd, build/loopless, test helpers
#   make deps       install build and test dependencies (apt-get, idempotent)
#   make test       unit + integration tests (root, real kernel)
#   make demo       a redirected local connection and its counters
#   make SANITIZE=1 build with ASan/UBSan
#   V=1             show full commands

OUTPUT ?= build
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

CFLAGS ?= -O2 -g
CFLAGS += -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE -DLOOPLESS_VERSION='"$(VERSION)"'
CFLAGS += -Ibpf -Idaemon -I$(OBJ)
ifeq ($(SANITIZE),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif

LIBBPF_LIBS = $(shell $(PKG_CONFIG) --libs libbpf 2>/dev/null || echo -lbpf -lelf -lz)
INIH_LIBS = $(shell $(PKG_CONFIG) --libs inih 2>/dev/null || echo -linih)
SYSTEMD_LIBS = $(shell $(PKG_CONFIG) --libs libsystemd 2>/dev/null || echo -lsystemd)
CMOCKA_LIBS = $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)

BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror -Ibpf -I$(OBJ)

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

.DELETE_ON_ERROR:
.SECONDARY:
.PHONY: all deps test unit integration demo install uninstall clean format

APPS := $(OUTPUT)/looplessd $(OUTPUT)/loopless
TEST_BINS := $(OUTPUT)/lltraffic $(OUTPUT)/test_config $(OUTPUT)/test_key

all: $(APPS) $(TEST_BINS)

# Objects shared by the daemon and the CLI, one file per concern.
COMMON_OBJS := $(addprefix $(OBJ)/,config.o pins.o cgroup.o counters.o log.o datapath.o)

$(OBJ) $(OUTPUT):
	$(Q)mkdir -p $@

$(OBJ)/vmlinux.h: | $(OBJ)
	$(call msg,GEN,$@)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@

$(OBJ)/loopless.bpf.o: bpf/loopless.bpf.c bpf/loopless.h $(OBJ)/vmlinux.h | $(OBJ)
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
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# Files that include the skeleton.
$(OBJ)/looplessd.o $(OBJ)/datapath.o: $(OBJ)/loopless.skel.h

$(OUTPUT)/looplessd: $(OBJ)/looplessd.o $(COMMON_OBJS) | $(OUTPUT)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LIBBPF_LIBS) $(INIH_LIBS) $(SYSTEMD_LIBS) -lcap -o $@

$(OUTPUT)/loopless: $(OBJ)/loopless.o $(COMMON_OBJS) | $(OUTPUT)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LIBBPF_LIBS) $(INIH_LIBS) -o $@

$(OUTPUT)/lltraffic: tests/lltraffic.c | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< -o $@ $(LDFLAGS) -lpthread

$(OUTPUT)/test_config: tests/unit/test_config.c $(OBJ)/config.o | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(INIH_LIBS) $(CMOCKA_LIBS)

$(OUTPUT)/test_key: tests/unit/test_key.c bpf/loopless.h | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< -o $@ $(LDFLAGS) $(CMOCKA_LIBS)

# Debian 12 packages for building, testing and benchmarking. Only what is
# missing is installed, so a second run changes nothing.
DEPS := make clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config \
	libinih-dev libsystemd-dev libcap-dev libcmocka-dev iproute2 procps util-linux jq \
	gnuplot-nox iperf3 coreutils
deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "deps: all installed"; fi

test: all
	$(Q)tests/run.sh $(OUTPUT)

unit: $(OUTPUT)/test_config $(OUTPUT)/test_key
	$(Q)tests/run.sh --unit-only $(OUTPUT)

integration: all
	$(Q)tests/run.sh --integration-only $(OUTPUT)

demo: all
	$(Q)tests/demo.sh $(OUTPUT)

install: $(APPS)
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)/etc/loopless
	install -m 0755 $(OUTPUT)/looplessd $(DESTDIR)$(PREFIX)/sbin/looplessd
	install -m 0755 $(OUTPUT)/loopless $(DESTDIR)$(PREFIX)/sbin/loopless
	test -e $(DESTDIR)/etc/loopless/looplessd.conf || \
		install -m 0644 config/looplessd.conf $(DESTDIR)/etc/loopless/looplessd.conf

uninstall:
	-[ -x $(DESTDIR)$(PREFIX)/sbin/loopless ] && $(DESTDIR)$(PREFIX)/sbin/loopless uninstall
	rm -f $(DESTDIR)$(PREFIX)/sbin/looplessd $(DESTDIR)$(PREFIX)/sbin/loopless

format:
	clang-format -i bpf/*.c bpf/*.h daemon/*.c daemon/*.h tests/*.c tests/unit/*.c

clean:
	$(call msg,CLEAN)
	$(Q)rm -rf $(OUTPUT)
