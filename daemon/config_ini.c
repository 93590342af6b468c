// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * looplessd configuration files: the inih adapter that reads INI text into the
 * configuration model (config.c), one key table and the checks inih leaves
 * to its caller.
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
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define MAX_SOCKETS_LIMIT 16777216UL
/* Far beyond any real configuration; bounds memory and line counts. */
#define CONFIG_TEXT_MAX (1024 * 1024)
/* A file name in a message: long ones are cut, leaving room for the rest. */
#define NAME_QUOTE_MAX 256

enum key_kind {
	KEY_PIN_DIR,
	KEY_CGROUP,
	KEY_LOG_LEVEL,
	KEY_U32,
	KEY_BOOL,
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
	/* KEY_U32: the field and its range; KEY_BOOL: the field. */
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
	{ .section = "datapath",
	  .name = "cross_netns",
	  .kind = KEY_BOOL,
	  .off = offsetof(struct config, cross_netns) },
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
	char q[CONFIG_QUOTE_MAX];

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
			   config_quote_len(q, sizeof(q), start + 1, (size_t)(p - start - 1)));
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
	char msg[CONFIG_ERR_MAX], q[CONFIG_QUOTE_MAX];
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
				key->name, section, config_quote(q, sizeof(q), value));
			return -EINVAL;
		}
		break;
	case KEY_U32:
		if (config_parse_uint(value, key->max, &num) || num < key->min) {
			state_fail(st, -EINVAL,
				   "bad value for \"%s\" in [%s]: \"%s\" (expected an integer from "
				   "%lu to %lu)",
				   key->name, section, config_quote(q, sizeof(q), value), key->min,
				   key->max);
			return -EINVAL;
		}
		*(uint32_t *)((char *)cfg + key->off) = (uint32_t)num;
		break;
	case KEY_BOOL:
		if (config_parse_bool(value, (bool *)((char *)cfg + key->off))) {
			state_fail(st, -EINVAL,
				   "bad value for \"%s\" in [%s]: \"%s\" (expected true or false)",
				   key->name, section, config_quote(q, sizeof(q), value));
			return -EINVAL;
		}
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
		r = config_ports_append(value, cfg->include_ports, CONFIG_MAX_PORT_RANGES,
					&cfg->n_include_ports, msg, sizeof(msg));
		break;
	case KEY_EXCLUDE_PORTS:
		if (!cont)
			cfg->n_exclude_ports = 0;
		r = config_ports_append(value, cfg->exclude_ports, CONFIG_MAX_PORT_RANGES,
					&cfg->n_exclude_ports, msg, sizeof(msg));
		break;
	case KEY_LOCAL_ADDRS:
		if (!cont)
			cfg->n_local_addrs = 0;
		r = config_addrs_append(value, cfg->local_addrs, CONFIG_MAX_LOCAL_ADDRS,
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
	char qn[CONFIG_QUOTE_MAX], qs[CONFIG_QUOTE_MAX];
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
			   config_quote(qn, sizeof(qn), name));
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
					   config_quote(qs, sizeof(qs), section), keys[i].section);
				return 0;
			}
		}
		state_fail(st, -EINVAL, "unknown key \"%s\" in [%s]",
			   config_quote(qn, sizeof(qn), name),
			   config_quote(qs, sizeof(qs), section));
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

static int parse_text(struct config *cfg, const char *name, const char *text, size_t len, char *err,
		      size_t errlen)
{
	/* The file name as messages show it: one line, whatever it holds. */
	char qname[NAME_QUOTE_MAX];
	struct parse_state *st;
	struct config *work;
	int r, ret;

	config_quote(qname, sizeof(qname), name);
	if (len > CONFIG_TEXT_MAX)
		return config_fail(err, errlen, "%s: too large (more than %d bytes)", qname,
				   CONFIG_TEXT_MAX);
	work = malloc(sizeof(*work));
	st = calloc(1, sizeof(*st));
	if (!work || !st || config_copy(work, cfg)) {
		free(work);
		free(st);
		config_fail(err, errlen, "%s: out of memory", qname);
		return -ENOMEM;
	}
	st->cfg = work;
	st->text = text;
	st->len = len;

	r = ini_parse_stream(read_line, st, handle, st);
	if (r == -2) {
		config_fail(err, errlen, "%s: out of memory", qname);
		ret = -ENOMEM;
	} else if (r > 0 && (!st->err || (unsigned int)r < st->err_line)) {
		/* A line inih could not parse, before any error of ours. */
		ret = config_fail(err, errlen,
				  "%s:%d: syntax error (expected \"key = value\" or \"[section]\")",
				  qname, r);
	} else if (st->err) {
		config_fail(err, errlen, "%s:%u: %s", qname, st->err_line, st->msg);
		ret = st->err;
	} else if (r) {
		ret = config_fail(err, errlen, "%s: parse error %d", qname, r);
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
		return config_fail(err, errlen, "%s: nothing to parse", name);
	return parse_text(cfg, name, text, strlen(text), err, errlen);
}

int config_parse_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
	size_t len = 0, size = 4096;
	char *buf = NULL, *tmp;
	int fd, r;
	ssize_t n;

	if (!cfg || !path)
		return config_fail(err, errlen, "no configuration file given");
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

		snprintf(err, errlen, "%s: %s", config_quote(qpath, sizeof(qpath), path),
			 strerror(-r));
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}
