// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* outside.c - daemons' sockets and files run outside the job (outside.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "common.h"
#include "kgate.h"
#include "kernel/mntrules.h"
#include "kernel/outside.h"

static const char *const systemd_paths[] = {
	"E/run/systemd/private",		/* systemctl, systemd-run as root */
	"E/run/systemd/io.systemd.Manager",	/* the manager over varlink */
	"T/run/systemd/initctl",		/* sysvinit compatibility fifo */
	"E/run/initctl",
	"E/run/udev/control",			/* udevadm control */
	"U/bus",				/* per-user managers: systemd-run --user */
	"U/systemd/private",
	NULL,
};
static const char *const system_bus_paths[] = {
	"E/run/dbus/system_bus_socket",		/* systemd-run, polkit, machined, udisks,
						 * packagekit, logind, NetworkManager */
	NULL,
};
static const char *const containers_paths[] = {
	"E/run/docker.sock", "T/run/docker", "T/run/containerd", "T/run/podman", "T/run/crio",
	"T/run/libvirt", "E/var/lib/lxd/unix.socket", "E/var/snap/lxd/common/lxd/unix.socket",
	"E/var/lib/incus/unix.socket",
	/* what the engines later run: images, containers, their configuration */
	"T/var/lib/docker", "T/var/lib/containerd", "T/var/lib/containers", "T/etc/docker",
	"T/etc/containerd", "T/etc/containers",
	NULL,
};
static const char *const snapd_paths[] = {
	"E/run/snapd.socket", "E/run/snapd-snap.socket", "T/var/lib/snapd",
	NULL,
};
static const char *const scheduled_paths[] = {
	"E/etc/crontab", "T/etc/cron.d", "T/etc/cron.hourly", "T/etc/cron.daily",
	"T/etc/cron.weekly", "T/etc/cron.monthly", "T/etc/cron.yearly", "E/etc/anacrontab",
	"T/var/spool/cron",			/* crontabs and at's jobs (Debian) */
	"T/var/spool/at", "T/var/spool/anacron",
	NULL,
};
static const char *const services_paths[] = {
	"T/etc/systemd", "T/run/systemd/system", "T/run/systemd/transient",
	"T/run/systemd/generator", "T/run/systemd/generator.early", "T/run/systemd/generator.late",
	"T/etc/init.d", "E/etc/rc.local", "E/etc/inittab", "T/etc/rcS.d", "T/etc/rc0.d",
	"T/etc/rc1.d", "T/etc/rc2.d", "T/etc/rc3.d", "T/etc/rc4.d", "T/etc/rc5.d", "T/etc/rc6.d",
	"T/etc/udev", "T/run/udev/rules.d", "T/etc/tmpfiles.d", "T/run/tmpfiles.d",
	"T/etc/binfmt.d", "T/etc/xdg/autostart", "E/etc/logrotate.conf", "T/etc/logrotate.d",
	"T/etc/update-motd.d", "T/etc/network", "T/etc/NetworkManager", "T/etc/dhcp",
	"T/etc/default",
	NULL,
};
static const char *const login_paths[] = {
	"E/etc/sudoers", "T/etc/sudoers.d", "E/etc/sudo.conf", "E/etc/profile", "T/etc/profile.d",
	"E/etc/bash.bashrc", "E/etc/bash.bash_logout", "T/etc/zsh", "E/etc/environment",
	"T/etc/pam.d", "E/etc/pam.conf", "T/etc/security", "T/etc/ssh", "E/etc/passwd",
	"E/etc/shadow", "E/etc/group", "E/etc/gshadow", "E/etc/subuid", "E/etc/subgid",
	"E/etc/login.defs", "E/etc/nsswitch.conf",
	/* root's startup files (HOME=/root is still the job's for the rest) */
	"E/root/.bashrc", "E/root/.profile", "E/root/.bash_profile", "E/root/.bash_login",
	"E/root/.bash_logout", "E/root/.zshrc", "E/root/.zshenv", "E/root/.zprofile",
	"E/root/.zlogin", "E/root/.pam_environment", "E/root/.forward", "T/root/.ssh",
	"T/root/.config/systemd", "T/root/.config/autostart",
	/* every user's (/home/NAME): run as that user at the next login, ssh
	 * session (rc, environment, authorized_keys, config's ProxyCommand) or
	 * desktop start; ~/bin and ~/.local/bin come first in their PATH */
	"HE/.bashrc", "HE/.profile", "HE/.bash_profile", "HE/.bash_login", "HE/.bash_logout",
	"HE/.zshrc", "HE/.zshenv", "HE/.zprofile", "HE/.zlogin", "HE/.pam_environment",
	"HE/.forward", "HT/.ssh", "HT/.config/systemd", "HT/.config/autostart",
	"HT/.config/environment.d", "HT/bin", "HT/.local/bin",
	NULL,
};
static const char *const loader_paths[] = {
	"E/etc/ld.so.preload", "E/etc/ld.so.conf", "T/etc/ld.so.conf.d", "E/etc/ld.so.cache",
	NULL,
};
static const char *const kernel_config_paths[] = {
	"T/etc/modprobe.d", "E/etc/modules", "T/etc/modules-load.d", "E/etc/sysctl.conf",
	"T/etc/sysctl.d", "T/etc/initramfs-tools", "T/etc/kernel", "E/etc/fstab",
	"E/etc/crypttab", "T/boot",
	NULL,
};
static const char *const packages_paths[] = {
	"T/etc/apt", "T/etc/dpkg", "T/var/lib/dpkg", "T/etc/yum.repos.d", "T/etc/dnf",
	"T/etc/yum", "T/var/lib/rpm",
	NULL,
};
static const char *const system_programs_paths[] = {
	"T/usr", "X/usr/local", "T/bin", "T/sbin", "T/lib", "T/lib32", "T/lib64", "T/libx32",
	NULL,
};
/* A member of its own (granted apart from system_programs): root's PATH has
 * /usr/local/sbin and /usr/local/bin before /usr/sbin and /usr/bin, ld.so.conf
 * names /usr/local/lib, Python runs /usr/local's .pth files at every start and
 * Perl looks in /usr/local first; services and cron run programs from /opt. */
static const char *const local_programs_paths[] = {
	"T/usr/local", "T/opt",
	NULL,
};
/* The rest of /etc: configuration that programs run outside the job read,
 * and some of it runs code (/etc/gitconfig's aliases and fsmonitor, Python's
 * sitecustomize.py, bash_completion.d, grub.d, acpi's events, X11 sessions,
 * polkit rules, ppp hooks...).  The members above name what they own in
 * /etc; their names are nearer than /etc, so their grants still apply. */
static const char *const system_config_paths[] = {
	"T/etc",
	NULL,
};

/* The order is the bit of each member in a grant: append only. */
const struct kg_out_member kg_out_members[] = {
	{ "systemd", true, "systemd's private socket and varlink, per-user managers, udev's "
	  "control: systemd-run and transient units run anything as the caller", systemd_paths },
	{ "system_bus", true, "the D-Bus system bus: systemd-run, polkit, machined, udisks, "
	  "packagekit act for root callers", system_bus_paths },
	{ "containers", true, "docker, containerd, podman, cri-o, libvirt, lxd, incus: a "
	  "container or VM with the host's disk; their images and configuration",
	  containers_paths },
	{ "snapd", true, "snapd: installs and runs snaps", snapd_paths },
	{ "scheduled", false, "cron, anacron and at: jobs run later as root", scheduled_paths },
	{ "services", false, "systemd units, init scripts, udev rules, tmpfiles, logrotate, "
	  "motd and network hooks: run as root at boot or on events", services_paths },
	{ "login", false, "sudoers, PAM, profiles, sshd, users and groups, root's startup "
	  "files: run or obeyed at the next login", login_paths },
	{ "loader", false, "ld.so.preload, ld.so.conf, ld.so.cache: libraries loaded into "
	  "every program", loader_paths },
	{ "kernel_config", false, "modprobe.d, modules, sysctl.d, initramfs, fstab, /boot: "
	  "obeyed by the kernel and at boot", kernel_config_paths },
	{ "packages", false, "apt, dpkg and rpm configuration and databases: maintainer "
	  "scripts run by the next package operation", packages_paths },
	{ "system_programs", false, "/usr (not /usr/local), /bin, /sbin, /lib: the programs "
	  "and libraries every root process runs", system_programs_paths },
	{ "local_programs", false, "/usr/local and /opt: programs, libraries, Python and "
	  "Perl modules that root's PATH, ld.so and interpreters find before the system's, "
	  "programs services run (make install, pip install as root)", local_programs_paths },
	{ "system_config", false, "the rest of /etc: configuration that programs outside the "
	  "job read, some of which runs code (gitconfig, Python's sitecustomize, "
	  "bash_completion.d, grub.d, acpi, X11 sessions, polkit rules)", system_config_paths },
};
const size_t kg_out_members_len = ARRAY_SIZE(kg_out_members);

int kg_out_by_name(const char *name)
{
	size_t i;

	for (i = 0; name && i < kg_out_members_len; i++)
		if (!strcasecmp(kg_out_members[i].name, name))
			return (int)i;
	return -1;
}

/* ---- full mode: kg_outside -------------------------------------------------------- */

static int out_mark(int fd, uint64_t dev, uint64_t ino, uint64_t hash, uint32_t flags)
{
	struct kg_out_key key = { .dev = dev, .ino = ino, .name_hash = hash };
	const uint32_t named = KG_OUT_F_ENTRY | KG_OUT_F_TREE;
	uint32_t old = 0, v;

	if (bpf_map_lookup_elem(fd, &key, &old) || !old)
		v = flags;
	else if ((flags & named) && !(old & named))	/* a name over a path to others, or
							 * over another member's exemption
							 * (/usr/local is local_programs') */
		v = (old & ~(KG_OUT_MEMBER_MASK | KG_OUT_F_EXEMPT)) | flags;
	else if ((flags & KG_OUT_F_EXEMPT) && (old & named))
		v = old;				/* the same, registered the other way */
	else						/* the first member stays */
		v = old | (flags & ~KG_OUT_MEMBER_MASK);
	if (v == old)
		return 0;
	return bpf_map_update_elem(fd, &key, &v, BPF_ANY) ? -errno : 0;
}

/* the name `base` in directory `dir` (followed: /var/run is /run) */
static int register_name(int fd, const char *dir, const char *base, uint32_t flags)
{
	struct stat st, pst;
	char real[PATH_MAX], path[PATH_MAX];
	uint64_t dev;
	int err;

	if (!realpath(dir, real) || stat(real, &pst) < 0)
		return errno == ENOENT || errno == ENOTDIR || errno == EACCES ? 0 : -errno;
	dev = kg_kernel_dev(pst.st_dev);
	err = out_mark(fd, dev, pst.st_ino, KG_OUT_HASH_DIR, KG_OUT_F_DIR);
	if (!err)
		err = out_mark(fd, dev, pst.st_ino, kg_hash_bytes(base, strlen(base)), flags);
	if (err)
		return err;
	/* a tree that is a mount point: the walk from beneath stops at its root */
	if ((flags & KG_OUT_F_TREE) && !kg_snprintf(path, sizeof(path), "%s/%s",
						     strcmp(real, "/") ? real : "", base) &&
	    lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_dev != pst.st_dev) {
		err = out_mark(fd, kg_kernel_dev(st.st_dev), st.st_ino, KG_OUT_HASH_SELF, flags);
		if (err)
			return err;
	}
	/* the directories leading to it: not renamed or removed */
	while (strcmp(real, "/")) {
		char *slash = strrchr(real, '/'), name[NAME_MAX + 1];

		if (!slash || kg_strlcpy(name, slash + 1, sizeof(name)))
			break;
		slash[slash == real] = '\0';
		if (stat(real, &pst) < 0)
			break;
		dev = kg_kernel_dev(pst.st_dev);
		err = out_mark(fd, dev, pst.st_ino, KG_OUT_HASH_DIR, KG_OUT_F_DIR);
		if (!err)
			err = out_mark(fd, dev, pst.st_ino, kg_hash_bytes(name, strlen(name)),
				       KG_OUT_F_PATH | (flags & KG_OUT_MEMBER_MASK));
		if (err)
			return err;
	}
	return 0;
}

static int register_path(int fd, const char *path, uint32_t flags)
{
	char dir[PATH_MAX], *slash;

	if (kg_strlcpy(dir, path, sizeof(dir)) || !(slash = strrchr(dir, '/')) || !slash[1])
		return -EINVAL;
	*slash = '\0';
	return register_name(fd, slash == dir ? "/" : dir, slash + 1, flags);
}

static uint32_t kind_flags(char kind)
{
	switch (kind) {
	case 'T': return KG_OUT_F_TREE | KG_OUT_F_ENTRY;
	case 'X': return KG_OUT_F_EXEMPT;
	default: return KG_OUT_F_ENTRY;
	}
}

/* Each directory entry of top (numeric names only if `numeric`), as
 * "top/NAME" (syscalls only: also used in the launched child). */
static int for_each_dir_in(const char *top, bool numeric, int (*fn)(const char *dir, void *arg),
			   void *arg)
{
	char buf[4096], dir[PATH_MAX];
	int fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;
	long n;

	if (fd < 0)
		return 0;
	while (!err && (n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
		long off = 0;

		while (!err && off < n) {
			struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *de = (void *)(buf + off);

			off += de->reclen;
			if (de->name[0] == '.' || (numeric && (de->name[0] < '0' || de->name[0] > '9')))
				continue;
			if (de->type != DT_DIR && de->type != DT_UNKNOWN)
				continue;
			if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", top, de->name) >=
			    sizeof(dir))
				continue;
			err = fn(dir, arg);
		}
	}
	close(fd);
	return err;
}

/* Each /run/user/UID directory: per-user managers. */
static int for_each_user_dir(int (*fn)(const char *dir, void *arg), void *arg)
{
	return for_each_dir_in("/run/user", true, fn, arg);
}

/* Each /home/NAME directory: users' startup files (root's are in /root). */
static int for_each_home_dir(int (*fn)(const char *dir, void *arg), void *arg)
{
	return for_each_dir_in("/home", false, fn, arg);
}

struct reg_user {
	int fd;
	const char *rel;
	uint32_t flags;
};

static int register_user(const char *dir, void *arg)
{
	struct reg_user *r = arg;
	char path[PATH_MAX];

	if (kg_snprintf(path, sizeof(path), "%s%s", dir, r->rel))
		return 0;
	return register_path(r->fd, path, r->flags);
}

int kg_outside_register(int fd)
{
	size_t m, i;
	int err;

	for (m = 0; m < kg_out_members_len; m++) {
		for (i = 0; kg_out_members[m].paths[i]; i++) {
			const char *p = kg_out_members[m].paths[i];
			uint32_t flags = kind_flags(p[0]) | (uint32_t)m;

			if (p[0] == 'U') {
				struct reg_user r = { fd, p + 1, flags };

				err = for_each_user_dir(register_user, &r);
			} else if (p[0] == 'H') {
				struct reg_user r = { fd, p + 2, kind_flags(p[1]) | (uint32_t)m };

				err = for_each_home_dir(register_user, &r);
			} else {
				err = register_path(fd, p + 1, flags);
			}
			if (err)
				return kg_err("outside: cannot register %s: %s", p + 1,
					      strerror(-err)), err;
		}
	}
	return 0;
}

/* ---- degraded mode: the job's mount namespace ------------------------------------- */

static int sys(int r)
{
	return r < 0 ? -errno : 0;
}

/* a socket: /dev/null over it (connect is refused: not a socket) */
static int cover_socket(const char *path)
{
	int err = sys(mount("/dev/null", path, NULL, MS_BIND, NULL));

	if (!err)
		err = sys(mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID |
				MS_NODEV | MS_NOEXEC, NULL));
	return err;
}

/* a directory of sockets: an empty read-only tmpfs */
static int cover_dir(const char *path)
{
	return sys(mount("kgate-outside", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV |
			 MS_NOEXEC, "size=4k,mode=000"));
}

/* Is path in /etc (or /etc itself)? */
static bool in_etc(const char *path)
{
	return !strncmp(path, "/etc", 4) && (path[4] == '/' || !path[4]);
}

/* A tree with an exemption beneath it (/usr and /usr/local): the exempt
 * directory becomes a mount of its own first, then the tree's top mount
 * alone is made read-only. */
static const char *exempt_beneath(const struct kg_out_member *m, const char *tree)
{
	size_t i, n = strlen(tree);

	for (i = 0; m->paths[i]; i++)
		if (m->paths[i][0] == 'X' && !strncmp(m->paths[i] + 1, tree, n) &&
		    m->paths[i][1 + n] == '/')
			return m->paths[i] + 1;
	return NULL;
}

static int hide_one(const struct kg_out_member *m, const char *path, char kind, bool etc_ro)
{
	struct stat st;
	const char *x;

	if (lstat(path, &st) < 0)
		return 0;	/* nothing there at launch (said in the docs) */
	if (S_ISLNK(st.st_mode))
		return 0;	/* /bin -> usr/bin: the target is covered */
	if (m->sockets && S_ISSOCK(st.st_mode))
		return cover_socket(path);
	if (m->sockets && S_ISDIR(st.st_mode) && kind == 'T' && !strncmp(path, "/run/", 5))
		return cover_dir(path);
	if (etc_ro && in_etc(path))
		return 0;	/* /etc is read-only as a whole */
	if (!strcmp(path, "/etc"))
		return 0;	/* /etc as a whole is kg_outside_hide's (etc_ro) */
	if (kind == 'T' && S_ISDIR(st.st_mode) && (x = exempt_beneath(m, path))) {
		struct stat xs;

		if (lstat(x, &xs) == 0 && S_ISDIR(xs.st_mode)) {
			int err = sys(mount(x, x, NULL, MS_BIND | MS_REC, NULL));

			if (err)
				return err;
			return kg_mnt_read_only_top(path);
		}
	}
	return kg_mnt_read_only(path);
}

struct hide_user {
	const struct kg_out_member *m;
	const char *rel;
	char kind;
};

static int hide_user(const char *dir, void *arg)
{
	struct hide_user *h = arg;
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s%s", dir, h->rel) >= sizeof(path))
		return 0;
	return hide_one(h->m, path, h->kind, false);
}

/* A file directly in /etc ("E/etc/crontab"): tools replace such files by a
 * rename in /etc itself, which a read-only /etc would refuse. */
static bool etc_file(const char *p)
{
	return p[0] == 'E' && in_etc(p + 1) && !strchr(p + 6, '/');
}

int kg_outside_hide(uint32_t granted)
{
	bool etc_ro = true, punched = false;
	size_t m, i;
	int err;

	/* /etc read-only as a whole (so no new name appears there either:
	 * /etc/ld.so.preload), unless a granted member has files directly in
	 * /etc; then only the others' names that exist are read-only */
	for (m = 0; m < kg_out_members_len; m++)
		for (i = 0; (granted & (1u << m)) && kg_out_members[m].paths[i]; i++)
			if (etc_file(kg_out_members[m].paths[i]) ||
			    !strcmp(kg_out_members[m].paths[i], "T/etc"))	/* system_config */
				etc_ro = false;
	/* the granted members' directories in /etc: mounts of their own, left
	 * writable when /etc's top mount becomes read-only */
	for (m = 0; etc_ro && m < kg_out_members_len; m++) {
		for (i = 0; (granted & (1u << m)) && kg_out_members[m].paths[i]; i++) {
			const char *p = kg_out_members[m].paths[i] + 1;
			struct stat st;

			if (!in_etc(p) || lstat(p, &st) < 0 || !S_ISDIR(st.st_mode))
				continue;
			err = sys(mount(p, p, NULL, MS_BIND | MS_REC, NULL));
			if (err)
				return err;
			punched = true;
		}
	}
	for (m = 0; m < kg_out_members_len; m++) {
		const struct kg_out_member *mb = &kg_out_members[m];

		if (granted & (1u << m))
			continue;
		for (i = 0; mb->paths[i]; i++) {
			const char *p = mb->paths[i];

			if (p[0] == 'X')
				continue;
			if (p[0] == 'U') {
				struct hide_user h = { mb, p + 1, 'E' };

				err = for_each_user_dir(hide_user, &h);
			} else if (p[0] == 'H') {
				struct hide_user h = { mb, p + 2, p[1] };

				err = for_each_home_dir(hide_user, &h);
			} else {
				err = hide_one(mb, p + 1, p[0], etc_ro);
			}
			if (err)
				return err;
		}
	}
	if (etc_ro)
		return punched ? kg_mnt_read_only_top("/etc") : kg_mnt_read_only("/etc");
	return 0;
}

const char *kg_out_how(const struct kg_out_member *m, int full)
{
	if (full)
		return m->sockets ? "BPF LSM: connect refused and recorded; its files also not "
				    "written, created, removed or renamed"
				  : "BPF LSM: write, create (names not there yet too), remove, "
				    "rename, link, chmod, chown refused and recorded";
	return m->sockets ? "mount ns: sockets there at launch covered (/dev/null, empty tmpfs); "
			    "not recorded; a socket made after launch not covered"
			  : "mount ns: read-only (/etc as a whole unless a member with files "
			    "directly in /etc is granted); not recorded; names made after launch "
			    "outside /etc not covered";
}

json_t *kg_outside_json(uint32_t granted, int full)
{
	json_t *g = json_array(), *p = json_array(), *o;
	size_t m;

	for (m = 0; m < kg_out_members_len; m++)
		json_array_append_new((granted & (1u << m)) ? g : p,
				      json_string(kg_out_members[m].name));
	o = json_pack("{s:o,s:o}", "granted", g, "protected", p);
	if (o && full >= 0)
		json_object_set_new(o, "how", json_string(
			full ? "bpf-lsm (outside.bpf.c: writes, creations, renames, connects "
			       "refused and recorded)"
			     : "mount-ns (sockets covered, files read-only, /etc read-only "
			       "unless a member with files directly in /etc is granted; not "
			       "recorded)"));
	return o;
}
