// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * looplessd configuration: defaults, INI parsing and validation.
 *
 * What we rely on in inih (Debian 12 ships r55, built with
 * INI_RUNTIME_OPTIONS; the defaults below are the ones in /usr/include/ini.h
 * and are never changed by this file):
 *
 * - INI_HANDLER_LINENO is 0, so the handler is not told the line number. We
 *   feed ini_parse_stream() from our own reader, which hands out exactly one
 *   whole line per call and counts them; inih counts reader calls the same
 *   way, so its "line of the first error" matches ours.
 * - The line buffer is ini_max_line (200) bytes and is passed to the reader
 *   as @num. A longer line would be split into pieces that inih parses as
 *   separate lines (a truncated value, then junk), so the reader rejects it
 *   ("line too long") instead of returning a piece.
 * - Comments: ';' or '#' as the first non-blank character of a line.
 *   Inline comments: only ';' preceded by a blank, and only on
 *   "key = value" lines: the Debian build does not strip them from
 *   continuation lines, so we do. A '#' after a value is NOT a comment to
 *   inih; we reject " #" in values rather than store it silently.
 * - Multi-line values (INI_ALLOW_MULTILINE): an indented non-blank line
 *   after a key calls the handler again with that key and the line as value.
 *   List keys append it; single-value keys reject it (the usual cause is an
 *   indented "key = value" line, which inih would swallow as a value).
 * - "key: value" is accepted like "key = value"; a UTF-8 BOM on line 1 is
 *   skipped; trailing blanks and '\r' are stripped.
 * - The handler is not called for section lines, so the reader checks them
 *   (unknown names, text after ']'); inih itself only reports a missing ']'.
 * - inih keeps parsing after an error and returns the first error line. Our
 *   reader returns EOF once the handler has failed, so nothing after our
 *   first error is applied, and a syntax error inih saw earlier still wins.
 *
 * A parse works on a copy of the configuration and replaces @cfg only on
 * success, so a bad file (SIGHUP) leaves the running configuration intact.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <getopt.h>
#include <ini.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "loopless.h"

#define MAX_SOCKETS_LIMIT 16777216UL
/* Far beyond any real configuration; bounds memory and line counts. */
#define CONFIG_TEXT_MAX (1024 * 1024)
/* Room for a quoted value in a message: long values are cut with "...". */
#define QUOTE_MAX CONFIG_QUOTE_MAX
/* A file name in a message: long ones are cut, leaving room for the rest. */
#define NAME_QUOTE_MAX 256

/*
 * The built-in default cgroup. It is not allocated so that config_init()
 * cannot fail; free_cgroups() and config_copy() know not to free or
 * duplicate it.
 */
static char default_cgroup[] = "/";

static const char *const log_level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
						      ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/*
 * @len bytes of @s for a message, between the caller's quotes: bytes that
 * are not printable ASCII become \xNN (so a message stays one line whatever
 * the input), '"' and '\' are escaped, and anything past @size is cut
 * with "...".
 */
static const char *quote(char *buf, size_t size, const char *s, size_t len)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[5];
		size_t n;

		if (c == '"' || c == '\\')
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\%c", c);
		else if (c < 0x20 || c > 0x7e)
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", c);
		else
			n = (size_t)snprintf(tmp, sizeof(tmp), "%c", c);
		/* Keep room for "..." and the terminator. */
		if (o + n + 4 > size) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(buf + o, tmp, n);
		o += n;
	}
	buf[o] = '\0';
	return buf;
}

static const char *quote_str(char *buf, size_t size, const char *s)
{
	return quote(buf, size, s, strlen(s));
}

const char *config_quote(char *buf, size_t size, const char *s)
{
	if (!buf || size < 4)
		return "";
	return quote(buf, size, s ? s : "", s ? strlen(s) : 0);
}

/* Decimal digits only (no sign, no blanks), at most @max, without overflow. */
static int parse_uint(const char *s, size_t len, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	size_t i;

	if (!len)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
		/* Checked at every digit, so v * 10 cannot overflow. */
		if (v > max)
			return -ERANGE;
	}
	*out = v;
	return 0;
}

int config_parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	if (!s || !out)
		return -EINVAL;
	return parse_uint(s, strlen(s), max, out);
}

void config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->pin_dir, sizeof(cfg->pin_dir), "%s", CONFIG_DEFAULT_PIN_DIR);
	cfg->cgroups[0] = default_cgroup;
	cfg->cgroup_lines[0] = 0;
	cfg->n_cgroups = 1;
	cfg->cgroups_are_default = true;
	cfg->max_sockets = LL_DEFAULT_MAX_SOCKETS;
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->queue_limit = LL_DEFAULT_QUEUE_LIMIT;
	cfg->reader_idle_ms = (uint32_t)(LL_DEFAULT_READER_IDLE_NS / 1000000);
	cfg->small_write = LL_DEFAULT_SMALL_WRITE;
	cfg->small_lag = LL_DEFAULT_SMALL_LAG;
	cfg->reenter_min_ms = (uint32_t)(LL_DEFAULT_REENTER_MIN_NS / 1000000);
}

static void free_cgroups(struct config *cfg)
{
	int i;

	for (i = 0; i < cfg->n_cgroups && i < CONFIG_MAX_CGROUPS; i++) {
		if (cfg->cgroups[i] != default_cgroup)
			free(cfg->cgroups[i]);
		cfg->cgroups[i] = NULL;
		cfg->cgroup_lines[i] = 0;
	}
	cfg->n_cgroups = 0;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	free_cgroups(cfg);
	cfg->cgroups_are_default = false;
}

int config_set_cgroups_clear(struct config *cfg)
{
	if (!cfg)
		return -EINVAL;
	free_cgroups(cfg);
	/* An explicit clear is a choice: the next cgroup adds to it. */
	cfg->cgroups_are_default = false;
	return 0;
}

/* True when every component of @path is "" or ".": it names the root. */
static bool path_is_root(const char *path)
{
	const char *p = path;

	while (*p) {
		size_t n = strcspn(p, "/");

		if (n > 1 || (n == 1 && p[0] != '.'))
			return false;
		p += n;
		p += strspn(p, "/");
	}
	return true;
}

static bool path_has_dotdot(const char *path)
{
	const char *p = path;

	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return true;
		p += n;
		p += strspn(p, "/");
	}
	return false;
}

int config_add_cgroup(struct config *cfg, const char *path, unsigned int line, char *err,
		      size_t errlen)
{
	char q[QUOTE_MAX];
	size_t len;
	char *copy;
	int i;

	if (!cfg || !path)
		return fail(err, errlen, "no cgroup path given");
	len = strlen(path);
	if (!len)
		return fail(err, errlen, "empty cgroup path");
	if (len >= CONFIG_PATH_MAX)
		return fail(err, errlen, "cgroup path too long (%zu bytes, at most %d)", len,
			    CONFIG_PATH_MAX - 1);
	if (path_has_dotdot(path))
		return fail(err, errlen, "cgroup \"%s\" contains a \"..\" component",
			    quote_str(q, sizeof(q), path));
	/* The root covers every socket already; naming it next to other
	 * cgroups would attach twice. Leaving "cgroup" out selects it. */
	if (path_is_root(path))
		return fail(err, errlen,
			    "cgroup \"%s\" is the cgroup2 root, which is only valid as the default "
			    "(leave \"cgroup\" out to use it)",
			    quote_str(q, sizeof(q), path));

	if (cfg->cgroups_are_default) {
		free_cgroups(cfg);
		cfg->cgroups_are_default = false;
	}
	for (i = 0; i < cfg->n_cgroups; i++) {
		if (strcmp(cfg->cgroups[i], path))
			continue;
		if (cfg->cgroup_lines[i])
			return fail(err, errlen, "duplicate cgroup \"%s\" (first on line %u)",
				    quote_str(q, sizeof(q), path), cfg->cgroup_lines[i]);
		return fail(err, errlen, "duplicate cgroup \"%s\"", quote_str(q, sizeof(q), path));
	}
	if (cfg->n_cgroups >= CONFIG_MAX_CGROUPS)
		return fail(err, errlen, "too many cgroups (at most %d)", CONFIG_MAX_CGROUPS);

	copy = strdup(path);
	if (!copy) {
		fail(err, errlen, "out of memory");
		return -ENOMEM;
	}
	cfg->cgroups[cfg->n_cgroups] = copy;
	cfg->cgroup_lines[cfg->n_cgroups] = line;
	cfg->n_cgroups++;
	return 0;
}

int config_check_pin_dir(const char *dir, char *err, size_t errlen)
{
	char q[QUOTE_MAX];
	size_t len;

	if (!dir)
		return fail(err, errlen, "no pin_dir given");
	len = strlen(dir);
	if (dir[0] != '/')
		return fail(err, errlen,
			    "\"%s\" is not an absolute path (it must start with \"/\")",
			    quote_str(q, sizeof(q), dir));
	/* The pins and the directory itself are removed on uninstall, and a
	 * bpffs would be mounted over the whole tree. */
	if (path_is_root(dir))
		return fail(err, errlen,
			    "\"%s\" is the root directory (use a directory of its own, "
			    "e.g. %s)",
			    quote_str(q, sizeof(q), dir), CONFIG_DEFAULT_PIN_DIR);
	if (len >= CONFIG_PATH_MAX)
		return fail(err, errlen, "path too long (%zu bytes, at most %d)", len,
			    CONFIG_PATH_MAX - 1);
	return 0;
}

int config_set_pin_dir(struct config *cfg, const char *dir, char *err, size_t errlen)
{
	int r;

	if (!cfg || !dir)
		return fail(err, errlen, "no pin_dir given");
	r = config_check_pin_dir(dir, err, errlen);
	if (r)
		return r;
	memcpy(cfg->pin_dir, dir, strlen(dir) + 1);
	return 0;
}

/* Separators of list items: any run of commas and blanks. */
static bool is_list_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t';
}

/* Next item of a list: *@s moves past it; 0 when none is left. */
static size_t next_item(const char **s, const char **item)
{
	const char *p = *s;
	size_t n = 0;

	while (*p && is_list_sep(*p))
		p++;
	while (p[n] && !is_list_sep(p[n]))
		n++;
	*item = p;
	*s = p + n;
	return n;
}

/* Append the ranges of @s to out[*n..max); *n moves on success only. */
static int ports_append(const char *s, struct port_range *out, int max, int *n, char *err,
			size_t errlen)
{
	char q[QUOTE_MAX];
	const char *item;
	int k = *n;
	size_t len;

	while ((len = next_item(&s, &item))) {
		const char *dash = memchr(item, '-', len);
		unsigned long lo, hi;
		bool ok;

		if (dash) {
			ok = !parse_uint(item, (size_t)(dash - item), 65535, &lo) &&
			     !parse_uint(dash + 1, len - (size_t)(dash - item) - 1, 65535, &hi);
		} else {
			ok = !parse_uint(item, len, 65535, &lo);
			hi = lo;
		}
		if (!ok || lo == 0)
			return fail(err, errlen,
				    "bad port \"%s\" (expected 1-65535 or a range N-M)",
				    quote(q, sizeof(q), item, len));
		if (lo > hi)
			return fail(
				err, errlen,
				"bad port range \"%s\" (the first port must not be above the second)",
				quote(q, sizeof(q), item, len));
		if (k >= max)
			return fail(err, errlen, "too many port ranges (at most %d)", max);
		out[k].lo = (uint16_t)lo;
		out[k].hi = (uint16_t)hi;
		k++;
	}
	*n = k;
	return 0;
}

/* One address of a list, as the datapath keys it. */
static int parse_addr(const char *item, size_t len, struct local_addr *a)
{
	char text[INET6_ADDRSTRLEN];
	struct in_addr v4;

	if (len >= sizeof(text))
		return -EINVAL;
	memcpy(text, item, len);
	text[len] = '\0';
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, text, &v4) == 1) {
		a->family = AF_INET;
		a->addr[10] = 0xff;
		a->addr[11] = 0xff;
		memcpy(&a->addr[12], &v4, 4);
		return 0;
	}
	if (inet_pton(AF_INET6, text, a->addr) != 1)
		return -EINVAL;
	/* The datapath keys a v4-mapped peer as IPv4 (ll_addr_set). */
	a->family = IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a->addr) ? AF_INET : AF_INET6;
	return 0;
}

/* Append the addresses of @s to out[*n..max); *n moves on success only. */
static int addrs_append(const char *s, struct local_addr *out, int max, int *n, char *err,
			size_t errlen)
{
	char q[QUOTE_MAX];
	const char *item;
	int k = *n, i;
	size_t len;

	while ((len = next_item(&s, &item))) {
		struct local_addr a;

		if (parse_addr(item, len, &a))
			return fail(err, errlen,
				    "bad address \"%s\" (expected an IPv4 or IPv6 address)",
				    quote(q, sizeof(q), item, len));
		for (i = 0; i < k; i++) {
			if (out[i].family == a.family && !memcmp(out[i].addr, a.addr, 16))
				return fail(err, errlen, "duplicate address \"%s\"",
					    quote(q, sizeof(q), item, len));
		}
		if (k >= max)
			return fail(err, errlen, "too many addresses (at most %d)", max);
		out[k++] = a;
	}
	*n = k;
	return 0;
}

int config_parse_metrics(const char *s, struct metrics_addr *out, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN], q[QUOTE_MAX];
	struct metrics_addr m = {};
	const char *colon, *port;
	unsigned long num;
	size_t hlen;
	int r;

	if (!s || !out)
		return fail(err, errlen, "invalid arguments");
	if (!*s) {
		*out = m; /* off */
		return 0;
	}
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close)
			return fail(err, errlen, "\"%s\": missing \"]\" after the IPv6 address",
				    quote_str(q, sizeof(q), s));
		if (close[1] != ':')
			return fail(
				err, errlen,
				"\"%s\": missing port (expected [ADDRESS]:PORT, e.g. [::1]:9464)",
				quote_str(q, sizeof(q), s));
		hlen = (size_t)(close - s - 1);
		if (hlen >= sizeof(host))
			goto bad_host6;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, m.addr) != 1)
			goto bad_host6;
		m.family = AF_INET6;
		port = close + 2;
	} else {
		colon = strchr(s, ':');
		if (!colon)
			return fail(
				err, errlen,
				"\"%s\": missing port (expected ADDRESS:PORT, e.g. 127.0.0.1:9464)",
				quote_str(q, sizeof(q), s));
		if (strchr(colon + 1, ':'))
			return fail(err, errlen,
				    "\"%s\": write an IPv6 address in brackets, e.g. [::1]:9464",
				    quote_str(q, sizeof(q), s));
		hlen = (size_t)(colon - s);
		if (hlen < sizeof(host)) {
			memcpy(host, s, hlen);
			host[hlen] = '\0';
		}
		if (hlen >= sizeof(host) || inet_pton(AF_INET, host, m.addr) != 1)
			return fail(
				err, errlen,
				"\"%s\" is not an IPv4 address (expected e.g. 127.0.0.1:9464 or "
				"[::1]:9464; host names are not resolved)",
				quote(q, sizeof(q), s, hlen));
		m.family = AF_INET;
		port = colon + 1;
	}
	r = parse_uint(port, strlen(port), 65535, &num);
	if (r == -ERANGE)
		return fail(err, errlen, "port \"%s\" out of range (0-65535)",
			    quote_str(q, sizeof(q), port));
	if (r)
		return fail(err, errlen, "bad port \"%s\" (expected a number from 0 to 65535)",
			    quote_str(q, sizeof(q), port));
	m.port = (uint16_t)num;
	m.enabled = true;
	inet_ntop(m.family, m.addr, host, sizeof(host));
	snprintf(m.text, sizeof(m.text), m.family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, m.port);
	*out = m;
	return 0;

bad_host6:
	return fail(err, errlen, "\"%s\" is not an IPv6 address (expected e.g. [::1]:9464)",
		    quote(q, sizeof(q), s + 1, strcspn(s + 1, "]")));
}

bool config_metrics_equal(const struct metrics_addr *a, const struct metrics_addr *b)
{
	if (!a->enabled || !b->enabled)
		return a->enabled == b->enabled;
	return a->family == b->family && a->port == b->port && !memcmp(a->addr, b->addr, 16);
}

int config_parse_log_level(const char *s, enum log_level *out)
{
	size_t i;

	if (!s || !out)
		return -EINVAL;
	for (i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
		if (!strcasecmp(s, log_level_names[i])) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *config_log_level_name(enum log_level level)
{
	if ((unsigned int)level >= sizeof(log_level_names) / sizeof(log_level_names[0]))
		return "unknown";
	return log_level_names[level];
}

/* ---- command line ---- */

/*
 * The option that "--@name" (@len bytes) selects the way getopt_long() does:
 * an exact match, else the only one it abbreviates. *@n counts the options
 * it abbreviates (more than one: ambiguous).
 */
static const struct option *match_long(const struct option *longopts, const char *name, size_t len,
				       int *n)
{
	const struct option *o, *found = NULL;

	*n = 0;
	for (o = longopts; o && o->name; o++) {
		if (strncmp(o->name, name, len))
			continue;
		if (strlen(o->name) == len) {
			*n = 1;
			return o;
		}
		found = o;
		(*n)++;
	}
	return *n == 1 ? found : NULL;
}

void config_option_error(char *buf, size_t size, int c, const struct option *longopts,
			 char *const argv[], int ind, int opt)
{
	/* The element getopt stopped at when it finished one (a long option
	 * always, a short one when it was the last of its cluster). */
	const char *arg = ind > 0 && argv ? argv[ind - 1] : "";
	const struct option *o = NULL, *p;
	char q[QUOTE_MAX], list[QUOTE_MAX * 2];
	bool is_long = false;
	size_t len = 0, used = 0;
	int n = 0;

	if (!buf || !size)
		return;
	if (!strncmp(arg, "--", 2) && arg[2]) {
		len = strcspn(arg + 2, "=");
		o = match_long(longopts, arg + 2, len, &n);
		/* optopt is the val of a long option that failed, 0 for one
		 * getopt did not know. */
		is_long = o ? o->val == opt : !opt;
	}
	if (is_long && o) {
		/* Its full name: "--conf" is "--config". */
		snprintf(q, sizeof(q), "--%s", o->name);
	} else if (is_long) {
		quote(q, sizeof(q), arg, len + 2);
	} else {
		char ch = (char)opt;

		q[0] = '-';
		quote(q + 1, sizeof(q) - 1, &ch, 1);
	}

	if (c == ':') {
		snprintf(buf, size, "option \"%s\" needs an argument (try --help)", q);
	} else if (c == '?' && is_long && o && o->has_arg == no_argument && arg[2 + len] == '=') {
		snprintf(buf, size, "option \"%s\" takes no argument (try --help)", q);
	} else if (c == '?' && is_long && n > 1 && len) {
		list[0] = '\0';
		for (p = longopts; p->name; p++) {
			if (strncmp(p->name, arg + 2, len) || used >= sizeof(list))
				continue;
			used += (size_t)snprintf(list + used, sizeof(list) - used, "%s--%s",
						 used ? ", " : "", p->name);
		}
		snprintf(buf, size, "ambiguous option \"%s\" (%s; try --help)", q, list);
	} else {
		snprintf(buf, size, "unknown option \"%s\" (try --help)", q);
	}
}

/* ---- INI parsing ---- */

enum key_kind {
	KEY_PIN_DIR,
	KEY_CGROUP,
	KEY_LOG_LEVEL,
	KEY_U32,
	KEY_METRICS,
	KEY_INCLUDE_PORTS,
	KEY_EXCLUDE_PORTS,
	KEY_LOCAL_ADDRS,
};

static const struct key_def {
	const char *section;
	const char *name;
	enum key_kind kind;
	bool list; /* continuation lines append to it */
	/* KEY_U32: the field and its range. */
	size_t off;
	unsigned long min, max;
} keys[] = {
/* clang-format off */
#define KEY(sec, key, k, is_list) { .section = sec, .name = key, .kind = k, .list = is_list }
#define U32_KEY(sec, key, field, lo, hi)                                                           \
	{ .section = sec, .name = key, .kind = KEY_U32, .off = offsetof(struct config, field),    \
	  .min = lo, .max = hi }
	/* clang-format on */
	KEY("daemon", "pin_dir", KEY_PIN_DIR, false),
	KEY("daemon", "cgroup", KEY_CGROUP, true),
	KEY("daemon", "log_level", KEY_LOG_LEVEL, false),
	U32_KEY("daemon", "max_sockets", max_sockets, 1, MAX_SOCKETS_LIMIT),
	KEY("daemon", "metrics", KEY_METRICS, false),
	KEY("datapath", "include_ports", KEY_INCLUDE_PORTS, true),
	KEY("datapath", "exclude_ports", KEY_EXCLUDE_PORTS, true),
	KEY("datapath", "local_addrs", KEY_LOCAL_ADDRS, true),
	U32_KEY("datapath", "queue_limit", queue_limit, 64UL << 10, 1UL << 30),
	U32_KEY("datapath", "reader_idle_ms", reader_idle_ms, 1, 60000),
	U32_KEY("datapath", "small_write", small_write, 0, 1UL << 20),
	U32_KEY("datapath", "small_lag", small_lag, 1, 1UL << 30),
	U32_KEY("datapath", "reenter_min_ms", reenter_min_ms, 1, 60000),
#undef U32_KEY
#undef KEY
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

struct parse_state {
	struct config *cfg; /* the working copy */
	const char *text;
	size_t len, pos;
	unsigned int lineno; /* lines handed to inih so far: the current line */
	/* First non-blank character of the current line in inih's buffer: a
	 * continuation is the only handler call whose value starts there (a
	 * "key = value" value starts after the '='). */
	const char *line_start;
	/* Mirrors inih's prev_name: set by a key line, cleared by a section
	 * line; an indented line is a continuation only while it is set. */
	bool have_prev;
	int err; /* first error, -errno */
	unsigned int err_line;
	char msg[CONFIG_ERR_MAX];
};

__attribute__((format(printf, 3, 4))) static void state_fail(struct parse_state *st, int err,
							     const char *fmt, ...)
{
	va_list ap;

	if (st->err)
		return;
	va_start(ap, fmt);
	vsnprintf(st->msg, sizeof(st->msg), fmt, ap);
	va_end(ap);
	st->err = err;
	st->err_line = st->lineno;
}

static bool is_known_section(const char *s, size_t len)
{
	return (len == 6 && !memcmp(s, "daemon", 6)) || (len == 8 && !memcmp(s, "datapath", 8));
}

/* Checks inih does not make on the "[section]" line in @start (see top). */
static void check_section_line(struct parse_state *st, const char *start)
{
	const char *p = start + 1, *close;
	bool was_space = false;
	char q[QUOTE_MAX];

	/* inih's find_chars_or_comment(start + 1, "]"). */
	while (*p && *p != ']' &&
	       !(INI_ALLOW_INLINE_COMMENTS && was_space &&
		 strchr(INI_INLINE_COMMENT_PREFIXES, *p))) {
		was_space = isspace((unsigned char)*p);
		p++;
	}
	if (*p != ']')
		return; /* inih reports the syntax error */
	if (!is_known_section(start + 1, (size_t)(p - start - 1))) {
		state_fail(st, -EINVAL, "unknown section [%s]",
			   quote(q, sizeof(q), start + 1, (size_t)(p - start - 1)));
		return;
	}
	close = p;
	for (p++; isspace((unsigned char)*p); p++)
		;
	if (*p && *p != ';' && *p != '#') {
		state_fail(st, -EINVAL, "unexpected text after [%.*s]", (int)(close - start - 1),
			   start + 1);
		return;
	}
	st->have_prev = false;
}

/* fgets() over the text, one whole line per call (see top for why). */
static char *read_line(char *str, int num, void *stream)
{
	struct parse_state *st = stream;
	const char *p, *nl, *start;
	size_t n;

	if (st->err || st->pos >= st->len || num < 2)
		return NULL;
	p = st->text + st->pos;
	nl = memchr(p, '\n', st->len - st->pos);
	n = nl ? (size_t)(nl - p) + 1 : st->len - st->pos;
	st->pos += n;
	st->lineno++;
	if (memchr(p, '\0', n)) {
		state_fail(st, -EINVAL, "line contains a NUL byte");
		return NULL;
	}
	/* The newline needs a byte too, and inih's buffer one for the NUL. */
	if ((nl ? n - 1 : n) > (size_t)num - 2) {
		state_fail(st, -EINVAL, "line too long (at most %d characters)", num - 2);
		return NULL;
	}
	memcpy(str, p, n);
	str[n] = '\0';

	/* Classify the line the way ini_parse_stream() will. */
	start = str;
	if (INI_ALLOW_BOM && st->lineno == 1 && !strncmp(start, "\xef\xbb\xbf", 3))
		start += 3;
	while (*start && isspace((unsigned char)*start))
		start++;
	st->line_start = start;
	if (!*start || strchr(INI_START_COMMENT_PREFIXES, *start))
		return str;
	if (INI_ALLOW_MULTILINE && st->have_prev && start > str)
		return str; /* a continuation */
	if (*start == '[')
		check_section_line(st, start);
	/* An error stops here: inih never sees the line. */
	return st->err ? NULL : str;
}

/* A list value continued on the next line: strip " ; comment" as inih does
 * on key lines. Returns a copy to free, or NULL. */
static char *strip_inline_comment(const char *value)
{
	const char *p = value;
	bool was_space = false;

	while (*p && !(was_space && strchr(INI_INLINE_COMMENT_PREFIXES, *p))) {
		was_space = isspace((unsigned char)*p);
		p++;
	}
	while (p > value && isspace((unsigned char)p[-1]))
		p--;
	return strndup(value, (size_t)(p - value));
}

static int apply_key(struct parse_state *st, const struct key_def *key, const char *section,
		     const char *value, bool cont)
{
	struct config *cfg = st->cfg;
	char msg[CONFIG_ERR_MAX], q[QUOTE_MAX];
	unsigned long num;
	int r = 0;

	msg[0] = '\0';
	switch (key->kind) {
	case KEY_PIN_DIR:
		r = config_set_pin_dir(cfg, value, msg, sizeof(msg));
		if (!r)
			cfg->pin_dir_line = st->lineno;
		break;
	case KEY_CGROUP:
		r = config_add_cgroup(cfg, value, st->lineno, msg, sizeof(msg));
		break;
	case KEY_LOG_LEVEL:
		if (config_parse_log_level(value, &cfg->log_level)) {
			state_fail(
				st, -EINVAL,
				"bad value for \"%s\" in [%s]: \"%s\" (expected error, warn, info or "
				"debug)",
				key->name, section, quote_str(q, sizeof(q), value));
			return -EINVAL;
		}
		break;
	case KEY_U32:
		if (parse_uint(value, strlen(value), key->max, &num) || num < key->min) {
			state_fail(st, -EINVAL,
				   "bad value for \"%s\" in [%s]: \"%s\" (expected an integer from "
				   "%lu to %lu)",
				   key->name, section, quote_str(q, sizeof(q), value), key->min,
				   key->max);
			return -EINVAL;
		}
		*(uint32_t *)((char *)cfg + key->off) = (uint32_t)num;
		break;
	case KEY_METRICS:
		r = config_parse_metrics(value, &cfg->metrics, msg, sizeof(msg));
		if (!r)
			cfg->metrics_line = st->lineno;
		break;
	/* A key line replaces the list, a continuation line extends it. */
	case KEY_INCLUDE_PORTS:
		if (!cont)
			cfg->n_include_ports = 0;
		r = ports_append(value, cfg->include_ports, CONFIG_MAX_PORT_RANGES,
				 &cfg->n_include_ports, msg, sizeof(msg));
		break;
	case KEY_EXCLUDE_PORTS:
		if (!cont)
			cfg->n_exclude_ports = 0;
		r = ports_append(value, cfg->exclude_ports, CONFIG_MAX_PORT_RANGES,
				 &cfg->n_exclude_ports, msg, sizeof(msg));
		break;
	case KEY_LOCAL_ADDRS:
		if (!cont)
			cfg->n_local_addrs = 0;
		r = addrs_append(value, cfg->local_addrs, CONFIG_MAX_LOCAL_ADDRS,
				 &cfg->n_local_addrs, msg, sizeof(msg));
		break;
	}
	if (r == -ENOMEM)
		state_fail(st, r, "out of memory");
	else if (r)
		state_fail(st, r, "bad value for \"%s\" in [%s]: %s", key->name, section, msg);
	return r;
}

static int handle(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *st = user;
	bool cont = value == st->line_start;
	const struct key_def *key = NULL;
	char qn[QUOTE_MAX], qs[QUOTE_MAX];
	char *copy = NULL;
	const char *p;
	size_t i;
	int r;

	if (st->err)
		return 0;
	if (!cont)
		st->have_prev = name[0] != '\0';

	if (!section[0]) {
		state_fail(st, -EINVAL, "key \"%s\" outside any section",
			   quote_str(qn, sizeof(qn), name));
		return 0;
	}
	for (i = 0; i < N_KEYS; i++) {
		if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name)) {
			key = &keys[i];
			break;
		}
	}
	if (!key) {
		for (i = 0; i < N_KEYS; i++) {
			if (!strcmp(keys[i].name, name)) {
				state_fail(st, -EINVAL,
					   "unknown key \"%s\" in [%s] (it belongs in [%s])", name,
					   quote_str(qs, sizeof(qs), section), keys[i].section);
				return 0;
			}
		}
		state_fail(st, -EINVAL, "unknown key \"%s\" in [%s]",
			   quote_str(qn, sizeof(qn), name), quote_str(qs, sizeof(qs), section));
		return 0;
	}
	if (cont) {
		if (!key->list || strchr(value, '=')) {
			state_fail(
				st, -EINVAL,
				"indented line continues the value of \"%s\" in [%s] (remove the "
				"indentation to start a new key%s)",
				key->name, section,
				key->list ? "" : "; only list keys take continuation lines");
			return 0;
		}
		copy = strip_inline_comment(value);
		if (!copy) {
			state_fail(st, -ENOMEM, "out of memory");
			return 0;
		}
		value = copy;
	}
	for (p = value; (p = strchr(p, '#')); p++) {
		if (p > value && (p[-1] == ' ' || p[-1] == '\t')) {
			state_fail(
				st, -EINVAL,
				"bad value for \"%s\" in [%s]: \"#\" starts a comment only at the "
				"beginning of a line (use \" ;\" after a value)",
				key->name, section);
			free(copy);
			return 0;
		}
	}
	r = apply_key(st, key, section, value, cont);
	free(copy);
	return r ? 0 : 1;
}

/* Deep copy of @src into @dst: config_free() on either leaves the other intact. */
static int config_copy(struct config *dst, const struct config *src)
{
	int i;

	*dst = *src;
	for (i = 0; i < dst->n_cgroups && i < CONFIG_MAX_CGROUPS; i++) {
		if (src->cgroups[i] == default_cgroup)
			continue;
		dst->cgroups[i] = strdup(src->cgroups[i]);
		if (!dst->cgroups[i]) {
			/* The rest still belongs to @src. */
			dst->n_cgroups = i;
			config_free(dst);
			return -ENOMEM;
		}
	}
	return 0;
}

static int parse_text(struct config *cfg, const char *name, const char *text, size_t len, char *err,
		      size_t errlen)
{
	/* The file name as messages show it: one line, whatever it holds. */
	char qname[NAME_QUOTE_MAX];
	struct parse_state *st;
	struct config *work;
	int r, ret;

	quote_str(qname, sizeof(qname), name);
	if (len > CONFIG_TEXT_MAX)
		return fail(err, errlen, "%s: too large (more than %d bytes)", qname,
			    CONFIG_TEXT_MAX);
	work = malloc(sizeof(*work));
	st = calloc(1, sizeof(*st));
	if (!work || !st || config_copy(work, cfg)) {
		free(work);
		free(st);
		fail(err, errlen, "%s: out of memory", qname);
		return -ENOMEM;
	}
	st->cfg = work;
	st->text = text;
	st->len = len;

	r = ini_parse_stream(read_line, st, handle, st);
	if (r == -2) {
		fail(err, errlen, "%s: out of memory", qname);
		ret = -ENOMEM;
	} else if (r > 0 && (!st->err || (unsigned int)r < st->err_line)) {
		/* A line inih could not parse, before any error of ours. */
		ret = fail(err, errlen,
			   "%s:%d: syntax error (expected \"key = value\" or \"[section]\")", qname,
			   r);
	} else if (st->err) {
		fail(err, errlen, "%s:%u: %s", qname, st->err_line, st->msg);
		ret = st->err;
	} else if (r) {
		ret = fail(err, errlen, "%s: parse error %d", qname, r);
	} else {
		ret = 0;
	}

	if (ret) {
		config_free(work);
	} else {
		snprintf(work->source, sizeof(work->source), "%s", name);
		config_free(cfg);
		*cfg = *work;
	}
	free(work);
	free(st);
	return ret;
}

int config_parse_string(struct config *cfg, const char *name, const char *text, char *err,
			size_t errlen)
{
	if (!name)
		name = "<string>";
	if (!cfg || !text)
		return fail(err, errlen, "%s: nothing to parse", name);
	return parse_text(cfg, name, text, strlen(text), err, errlen);
}

int config_parse_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
	size_t len = 0, size = 4096;
	char *buf = NULL, *tmp;
	int fd, r;
	ssize_t n;

	if (!cfg || !path)
		return fail(err, errlen, "no configuration file given");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto fail_errno;
	}
	for (;;) {
		if (!buf || len == size) {
			if (buf)
				size *= 2;
			/* One byte more than the limit tells "too large". */
			if (size > CONFIG_TEXT_MAX + 1)
				size = CONFIG_TEXT_MAX + 1;
			if (buf && len == size) {
				r = -EFBIG;
				goto fail_errno;
			}
			tmp = realloc(buf, size);
			if (!tmp) {
				r = -ENOMEM;
				goto fail_errno;
			}
			buf = tmp;
		}
		n = read(fd, buf + len, size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto fail_errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	r = parse_text(cfg, path, buf, len, err, errlen);
	free(buf);
	return r;

fail_errno:
	if (err && errlen) {
		char qpath[NAME_QUOTE_MAX];

		snprintf(err, errlen, "%s: %s", quote_str(qpath, sizeof(qpath), path),
			 strerror(-r));
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}
