// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * looplessd configuration model: the defaults, the setters the file parser
 * (config_ini.c) and the command line share, the parsers of single values and
 * the quoting of values in messages. It knows nothing of INI syntax, so the
 * daemon's options and the file reach the same checks and the same messages.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "config.h"
#include "loopless.h"

/* Room for a quoted value in a message: long values are cut with "...". */
#define QUOTE_MAX CONFIG_QUOTE_MAX

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

int config_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

const char *config_quote_len(char *buf, size_t size, const char *s, size_t len)
{
	size_t i, o = 0;

	if (!buf || size < 4)
		return "";
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

const char *config_quote(char *buf, size_t size, const char *s)
{
	return config_quote_len(buf, size, s ? s : "", s ? strlen(s) : 0);
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

/* Deep copy of @src into @dst: config_free() on either leaves the other intact. */
int config_copy(struct config *dst, const struct config *src)
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
		return config_fail(err, errlen, "no cgroup path given");
	len = strlen(path);
	if (!len)
		return config_fail(err, errlen, "empty cgroup path");
	if (len >= CONFIG_PATH_MAX)
		return config_fail(err, errlen, "cgroup path too long (%zu bytes, at most %d)", len,
				   CONFIG_PATH_MAX - 1);
	if (path_has_dotdot(path))
		return config_fail(err, errlen, "cgroup \"%s\" contains a \"..\" component",
				   config_quote(q, sizeof(q), path));
	/* The root covers every socket already; naming it next to other
	 * cgroups would attach twice. Leaving "cgroup" out selects it. */
	if (path_is_root(path))
		return config_fail(
			err, errlen,
			"cgroup \"%s\" is the cgroup2 root, which is only valid as the default "
			"(leave \"cgroup\" out to use it)",
			config_quote(q, sizeof(q), path));

	if (cfg->cgroups_are_default) {
		free_cgroups(cfg);
		cfg->cgroups_are_default = false;
	}
	for (i = 0; i < cfg->n_cgroups; i++) {
		if (strcmp(cfg->cgroups[i], path))
			continue;
		if (cfg->cgroup_lines[i])
			return config_fail(err, errlen,
					   "duplicate cgroup \"%s\" (first on line %u)",
					   config_quote(q, sizeof(q), path), cfg->cgroup_lines[i]);
		return config_fail(err, errlen, "duplicate cgroup \"%s\"",
				   config_quote(q, sizeof(q), path));
	}
	if (cfg->n_cgroups >= CONFIG_MAX_CGROUPS)
		return config_fail(err, errlen, "too many cgroups (at most %d)",
				   CONFIG_MAX_CGROUPS);

	copy = strdup(path);
	if (!copy) {
		config_fail(err, errlen, "out of memory");
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
		return config_fail(err, errlen, "no pin_dir given");
	len = strlen(dir);
	if (dir[0] != '/')
		return config_fail(err, errlen,
				   "\"%s\" is not an absolute path (it must start with \"/\")",
				   config_quote(q, sizeof(q), dir));
	/* The pins and the directory itself are removed on uninstall, and a
	 * bpffs would be mounted over the whole tree. */
	if (path_is_root(dir))
		return config_fail(err, errlen,
				   "\"%s\" is the root directory (use a directory of its own, "
				   "e.g. %s)",
				   config_quote(q, sizeof(q), dir), CONFIG_DEFAULT_PIN_DIR);
	if (len >= CONFIG_PATH_MAX)
		return config_fail(err, errlen, "path too long (%zu bytes, at most %d)", len,
				   CONFIG_PATH_MAX - 1);
	return 0;
}

int config_set_pin_dir(struct config *cfg, const char *dir, char *err, size_t errlen)
{
	int r;

	if (!cfg || !dir)
		return config_fail(err, errlen, "no pin_dir given");
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
int config_ports_append(const char *s, struct port_range *out, int max, int *n, char *err,
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
			return config_fail(err, errlen,
					   "bad port \"%s\" (expected 1-65535 or a range N-M)",
					   config_quote_len(q, sizeof(q), item, len));
		if (lo > hi)
			return config_fail(
				err, errlen,
				"bad port range \"%s\" (the first port must not be above the second)",
				config_quote_len(q, sizeof(q), item, len));
		if (k >= max)
			return config_fail(err, errlen, "too many port ranges (at most %d)", max);
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
int config_addrs_append(const char *s, struct local_addr *out, int max, int *n, char *err,
			size_t errlen)
{
	char q[QUOTE_MAX];
	const char *item;
	int k = *n, i;
	size_t len;

	while ((len = next_item(&s, &item))) {
		struct local_addr a;

		if (parse_addr(item, len, &a))
			return config_fail(err, errlen,
					   "bad address \"%s\" (expected an IPv4 or IPv6 address)",
					   config_quote_len(q, sizeof(q), item, len));
		for (i = 0; i < k; i++) {
			if (out[i].family == a.family && !memcmp(out[i].addr, a.addr, 16))
				return config_fail(err, errlen, "duplicate address \"%s\"",
						   config_quote_len(q, sizeof(q), item, len));
		}
		if (k >= max)
			return config_fail(err, errlen, "too many addresses (at most %d)", max);
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
		return config_fail(err, errlen, "invalid arguments");
	if (!*s) {
		*out = m; /* off */
		return 0;
	}
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close)
			return config_fail(err, errlen,
					   "\"%s\": missing \"]\" after the IPv6 address",
					   config_quote(q, sizeof(q), s));
		if (close[1] != ':')
			return config_fail(
				err, errlen,
				"\"%s\": missing port (expected [ADDRESS]:PORT, e.g. [::1]:9464)",
				config_quote(q, sizeof(q), s));
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
			return config_fail(
				err, errlen,
				"\"%s\": missing port (expected ADDRESS:PORT, e.g. 127.0.0.1:9464)",
				config_quote(q, sizeof(q), s));
		if (strchr(colon + 1, ':'))
			return config_fail(
				err, errlen,
				"\"%s\": write an IPv6 address in brackets, e.g. [::1]:9464",
				config_quote(q, sizeof(q), s));
		hlen = (size_t)(colon - s);
		if (hlen < sizeof(host)) {
			memcpy(host, s, hlen);
			host[hlen] = '\0';
		}
		if (hlen >= sizeof(host) || inet_pton(AF_INET, host, m.addr) != 1)
			return config_fail(
				err, errlen,
				"\"%s\" is not an IPv4 address (expected e.g. 127.0.0.1:9464 or "
				"[::1]:9464; host names are not resolved)",
				config_quote_len(q, sizeof(q), s, hlen));
		m.family = AF_INET;
		port = colon + 1;
	}
	r = parse_uint(port, strlen(port), 65535, &num);
	if (r == -ERANGE)
		return config_fail(err, errlen, "port \"%s\" out of range (0-65535)",
				   config_quote(q, sizeof(q), port));
	if (r)
		return config_fail(err, errlen,
				   "bad port \"%s\" (expected a number from 0 to 65535)",
				   config_quote(q, sizeof(q), port));
	m.port = (uint16_t)num;
	m.enabled = true;
	inet_ntop(m.family, m.addr, host, sizeof(host));
	snprintf(m.text, sizeof(m.text), m.family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, m.port);
	*out = m;
	return 0;

bad_host6:
	return config_fail(err, errlen, "\"%s\" is not an IPv6 address (expected e.g. [::1]:9464)",
			   config_quote_len(q, sizeof(q), s + 1, strcspn(s + 1, "]")));
}

bool config_metrics_equal(const struct metrics_addr *a, const struct metrics_addr *b)
{
	if (!a->enabled || !b->enabled)
		return a->enabled == b->enabled;
	return a->family == b->family && a->port == b->port && !memcmp(a->addr, b->addr, 16);
}

int config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" }, *const no[] = { "false",
										       "no", "off",
										       "0" };
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
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
