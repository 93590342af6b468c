/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * looplessd configuration: the model (config.c: defaults, setters, parsers of
 * single values) and reading it from an INI file (config_ini.c, on inih).
 * Pure: it touches no kernel state and no file but the one it parses, so it
 * is unit-tested and fuzzed on its own. Resolving cgroup paths against the
 * cgroup2 mount happens in the daemon.
 */
#ifndef LOOPLESS_CONFIG_H
#define LOOPLESS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "log.h" /* enum log_level, the log_level key's values */
#include "metrics.h" /* struct metrics_addr, the metrics key's value */

#define CONFIG_DEFAULT_PATH "/etc/loopless/looplessd.conf"
#define CONFIG_DEFAULT_PIN_DIR "/sys/fs/bpf/loopless"
#define CONFIG_MAX_CGROUPS 64
#define CONFIG_MAX_PORT_RANGES 64
#define CONFIG_MAX_LOCAL_ADDRS 256
#define CONFIG_PATH_MAX 4096
#define CONFIG_ERR_MAX 512
#define CONFIG_QUOTE_MAX 96 /* a value quoted in a message, see config_quote() */

struct port_range {
	uint16_t lo, hi; /* inclusive, host byte order */
};

struct local_addr {
	int family; /* AF_INET or AF_INET6 as written */
	uint8_t addr[16]; /* IPv4 stored v4-mapped (::ffff:a.b.c.d), network order */
};

/* Where the metrics endpoint listens ("metrics" in [daemon]). */
struct config {
	char pin_dir[CONFIG_PATH_MAX];
	unsigned int pin_dir_line; /* line of "pin_dir" in source, 0: default */
	/* As written: absolute, or relative to the cgroup2 mount ("/" or "" is
	 * its root). */
	char *cgroups[CONFIG_MAX_CGROUPS];
	unsigned int cgroup_lines[CONFIG_MAX_CGROUPS]; /* 0: default or command line */
	int n_cgroups;
	/* true while cgroups[] holds the built-in default: the first "cgroup"
	 * key of a file (or --cgroup) replaces the list rather than adding. */
	bool cgroups_are_default;
	uint32_t max_sockets;
	enum log_level log_level;
	struct port_range include_ports[CONFIG_MAX_PORT_RANGES];
	int n_include_ports;
	struct port_range exclude_ports[CONFIG_MAX_PORT_RANGES];
	int n_exclude_ports;
	struct local_addr local_addrs[CONFIG_MAX_LOCAL_ADDRS];
	int n_local_addrs;
	/* Path switching (see ll_sk_msg in bpf/loopless.bpf.c). */
	uint32_t queue_limit; /* bytes a reading reader may have waiting */
	uint32_t reader_idle_ms; /* a reader not seen reading for this long gets SO_RCVBUF */
	uint32_t small_write; /* writes up to this many bytes can form a small-write stream */
	uint32_t small_lag; /* ... once this many bytes wait unread */
	uint32_t reenter_min_ms; /* a pair that left for TCP comes back after this, doubling */
	/* Pair ends in two network namespaces of the node (pod to pod over a
	 * veth), admitted by address ownership; off by default. */
	bool cross_netns;
	struct metrics_addr metrics;
	unsigned int metrics_line; /* line of "metrics" in source, 0: default */
	char source[CONFIG_PATH_MAX]; /* file the values came from, "" for defaults */
};

/* Fill @cfg with the documented defaults (see config/looplessd.conf). */
void config_init(struct config *cfg);
/* Free what config_init/parse allocated. @cfg may be reused after config_init. */
void config_free(struct config *cfg);
/* Deep copy of @src into @dst: config_free() on either leaves the other intact.
 * 0 or -ENOMEM (@dst then holds nothing to free). */
int config_copy(struct config *dst, const struct config *src);

/*
 * Reading a file, in config_ini.c. Declared here rather than in a header of
 * its own so that whoever loads a configuration (the daemon, the fuzzer, the
 * tests) includes this one header, and no inih type leaks into it.
 *
 * Parse INI text from @path into @cfg (which holds defaults or earlier
 * values). Returns 0, -ENOENT when the file does not exist, or -EINVAL with
 * @err set to one line naming file, line and key, e.g.
 *   /etc/loopless/looplessd.conf:4: unknown key "cgroupz" in [daemon]
 * Any other -errno: the file could not be read (err says why).
 */
int config_parse_file(struct config *cfg, const char *path, char *err, size_t errlen);
/* The same for text in memory; @name stands for the file name in messages. */
int config_parse_string(struct config *cfg, const char *name, const char *text, char *err,
			size_t errlen);

/* Setters shared by the parser and the command line. 0 or -EINVAL (err set,
 * without file/line: the caller prefixes its context). */
int config_set_cgroups_clear(struct config *cfg);
int config_add_cgroup(struct config *cfg, const char *path, unsigned int line, char *err,
		      size_t errlen);
int config_set_pin_dir(struct config *cfg, const char *dir, char *err, size_t errlen);
/* Append the items of the list value @s ("80, 443 8000-8100"; "10.0.0.1
 * ::1") to out[*n..max): *n moves on success only, so a bad item leaves the
 * list as it was. Continuation lines of a list key call them once each. */
int config_ports_append(const char *s, struct port_range *out, int max, int *n, char *err,
			size_t errlen);
int config_addrs_append(const char *s, struct local_addr *out, int max, int *n, char *err,
			size_t errlen);
/* The checks config_set_pin_dir() makes (absolute, not "/", not too long),
 * for a pin directory given to loopless. */
int config_check_pin_dir(const char *dir, char *err, size_t errlen);
/* "127.0.0.1:9464", "[::1]:9464" (IP literals only, IPv6 in brackets, port
 * 0-65535); empty: off. */
int config_parse_metrics(const char *s, struct metrics_addr *out, char *err, size_t errlen);
/* Same address and port (an empty one equals any other empty one). */
bool config_metrics_equal(const struct metrics_addr *a, const struct metrics_addr *b);
/* "true", "yes", "on", "1" or their opposites, any case: 0, or -EINVAL. */
int config_parse_bool(const char *s, bool *out);
int config_parse_log_level(const char *s, enum log_level *out);
const char *config_log_level_name(enum log_level level);
/* Decimal digits only (no sign, blank or base prefix), at most @max: 0,
 * -EINVAL (not a number) or -ERANGE (above @max). */
int config_parse_uint(const char *s, unsigned long max, unsigned long *out);

/*
 * @s for a message, between the caller's quotes, in @buf: bytes that are not
 * printable ASCII become \xNN (a message stays one line whatever the input),
 * '"' and '\' are escaped, and what does not fit @size (CONFIG_QUOTE_MAX is
 * plenty for a value) is cut with "...".
 */
const char *config_quote(char *buf, size_t size, const char *s);
/* The same for @len bytes of @s (a piece of a line, or one option letter). */
const char *config_quote_len(char *buf, size_t size, const char *s, size_t len);

/* The setters' error convention, for the file parser too: @fmt into @err
 * (when given), and -EINVAL. */
__attribute__((format(printf, 3, 4))) int config_fail(char *err, size_t errlen, const char *fmt,
						      ...);

#endif /* LOOPLESS_CONFIG_H */
