/* SPDX-License-Identifier: MIT */
/*
 * CRIU's global options that mean nothing to a lazy-pages daemon or a lazy page server.
 *
 * CRIU parses one option table for every command, so `criu lazy-pages` and `criu
 * page-server` accept, say, --shell-job or --timeout 10, and tools build their command
 * lines from a common set (zdtm.py adds --action-script with --script, runc and scripts
 * pass -j). A drop-in must take them too: they are read (with their argument, if any),
 * ignored, and named once in the log. The names and argument kinds are those of CRIU
 * 3.17.1's table (read from the binary), plus a few later ones (4.x); the options the
 * commands do use (-D -W -o -v -d --pidfile --status-fd --address --port --tls...) are
 * in their own tables.
 */
#ifndef LP_CRIU_OPTS_H
#define LP_CRIU_OPTS_H

#include <getopt.h>

#define LP_OPT_CRIU_IGNORED 899

/* Short options: -S -s -R -j -l, and -t -r -J -L -M with an argument, -x with an optional one. */
#define LP_CRIU_IGNORED_SHORT "SsRjlt:r:J:L:M:x::"

#define LP_CRIU_IGNORED_(name, arg)                  \
	{                                            \
		name, arg, NULL, LP_OPT_CRIU_IGNORED \
	}
#define LP_CRIU_IGNORED_BOOL_(name) \
	LP_CRIU_IGNORED_(name, no_argument), LP_CRIU_IGNORED_("no-" name, no_argument)

#define LP_CRIU_IGNORED_LONG_OPTIONS                                                             \
	LP_CRIU_IGNORED_("tree", required_argument),                                             \
		LP_CRIU_IGNORED_("leave-stopped", no_argument),                                  \
		LP_CRIU_IGNORED_("leave-running", no_argument),                                  \
		LP_CRIU_IGNORED_BOOL_("restore-detached"),                                       \
		LP_CRIU_IGNORED_BOOL_("restore-sibling"),                                        \
		LP_CRIU_IGNORED_("no-daemon", no_argument),                                      \
		LP_CRIU_IGNORED_("join-ns", required_argument),                                  \
		LP_CRIU_IGNORED_("root", required_argument),                                     \
		LP_CRIU_IGNORED_("ext-unix-sk", optional_argument),                              \
		LP_CRIU_IGNORED_BOOL_("tcp-established"),                                        \
		LP_CRIU_IGNORED_("close", required_argument), LP_CRIU_IGNORED_BOOL_("log-pid"),  \
		LP_CRIU_IGNORED_BOOL_("evasive-devices"),                                        \
		LP_CRIU_IGNORED_("veth-pair", required_argument),                                \
		LP_CRIU_IGNORED_("action-script", required_argument),                            \
		LP_CRIU_IGNORED_BOOL_("link-remap"), LP_CRIU_IGNORED_BOOL_("shell-job"),         \
		LP_CRIU_IGNORED_BOOL_("file-locks"),                                             \
		LP_CRIU_IGNORED_("prev-images-dir", required_argument),                          \
		LP_CRIU_IGNORED_("ms", no_argument), LP_CRIU_IGNORED_BOOL_("track-mem"),         \
		LP_CRIU_IGNORED_BOOL_("auto-dedup"),                                             \
		LP_CRIU_IGNORED_("libdir", required_argument),                                   \
		LP_CRIU_IGNORED_("cpu-cap", optional_argument),                                  \
		LP_CRIU_IGNORED_BOOL_("force-irmap"),                                            \
		LP_CRIU_IGNORED_("ext-mount-map", required_argument),                            \
		LP_CRIU_IGNORED_("exec-cmd", no_argument),                                       \
		LP_CRIU_IGNORED_("manage-cgroups", optional_argument),                           \
		LP_CRIU_IGNORED_("cgroup-root", required_argument),                              \
		LP_CRIU_IGNORED_("inherit-fd", required_argument),                               \
		LP_CRIU_IGNORED_("feature", required_argument),                                  \
		LP_CRIU_IGNORED_("skip-mnt", required_argument),                                 \
		LP_CRIU_IGNORED_("enable-fs", required_argument),                                \
		LP_CRIU_IGNORED_("enable-external-sharing", no_argument),                        \
		LP_CRIU_IGNORED_("enable-external-masters", no_argument),                        \
		LP_CRIU_IGNORED_("freeze-cgroup", required_argument),                            \
		LP_CRIU_IGNORED_("ghost-limit", required_argument),                              \
		LP_CRIU_IGNORED_("irmap-scan-path", required_argument),                          \
		LP_CRIU_IGNORED_("lsm-profile", required_argument),                              \
		LP_CRIU_IGNORED_("timeout", required_argument),                                  \
		LP_CRIU_IGNORED_("external", required_argument),                                 \
		LP_CRIU_IGNORED_("empty-ns", required_argument), LP_CRIU_IGNORED_BOOL_("extra"), \
		LP_CRIU_IGNORED_BOOL_("experimental"), LP_CRIU_IGNORED_("all", no_argument),     \
		LP_CRIU_IGNORED_("cgroup-props", required_argument),                             \
		LP_CRIU_IGNORED_("cgroup-props-file", required_argument),                        \
		LP_CRIU_IGNORED_("cgroup-dump-controller", required_argument),                   \
		LP_CRIU_IGNORED_BOOL_("skip-in-flight"), LP_CRIU_IGNORED_BOOL_("deprecated"),    \
		LP_CRIU_IGNORED_BOOL_("display-stats"), LP_CRIU_IGNORED_BOOL_("weak-sysctls"),   \
		LP_CRIU_IGNORED_BOOL_("tcp-close"), LP_CRIU_IGNORED_BOOL_("stream"),             \
		LP_CRIU_IGNORED_("cgroup-yard", required_argument),                              \
		LP_CRIU_IGNORED_("pre-dump-mode", required_argument),                            \
		LP_CRIU_IGNORED_("file-validation", required_argument),                          \
		LP_CRIU_IGNORED_("lsm-mount-context", required_argument),                        \
		LP_CRIU_IGNORED_("network-lock", required_argument),                             \
		LP_CRIU_IGNORED_BOOL_("mntns-compat-mode"),                                      \
		LP_CRIU_IGNORED_("unprivileged", no_argument),                                   \
		LP_CRIU_IGNORED_("skip-file-rwx-check", no_argument),                            \
		LP_CRIU_IGNORED_BOOL_("ghost-fiemap"),                                           \
		LP_CRIU_IGNORED_("allow-uprobes", no_argument),                                  \
		LP_CRIU_IGNORED_("no-default-config", no_argument),                              \
		LP_CRIU_IGNORED_("config", required_argument)

#endif
