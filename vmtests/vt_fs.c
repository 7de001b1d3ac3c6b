// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_fs - file rules on file systems whose stat(2) device is not the
 * superblock's: btrfs subvolumes (st_dev is the subvolume's anonymous
 * device, and every subvolume numbers its inodes from 256, so the same
 * inode number exists in each) and overlayfs (a file reports its layer's
 * device).  A rule must match its object there, and only its object.
 *
 * Needs the loop, btrfs and overlay modules and mkfs.btrfs in the guest
 * (vmtests/run.sh packs them); SKIPs what is missing, and outside "full".
 */
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include "testlib.h"
#include "vt_lib.h"

static bool have_fs(const char *name)
{
	char *text = kg_read_file("/proc/filesystems", 1 << 16, NULL);
	char needle[64];
	bool found;

	snprintf(needle, sizeof(needle), "\t%s\n", name);
	found = text && strstr(text, needle);
	free(text);
	return found;
}

static int open_rd(struct vt *v, void *rel)
{
	char p[512];
	int fd = open(vt_path(v, rel, p, sizeof(p)), O_RDONLY);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int open_wr(struct vt *v, void *rel)
{
	char p[512];
	int fd = open(vt_path(v, rel, p, sizeof(p)), O_WRONLY);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static ino_t ino_of(struct vt *v, const char *rel)
{
	struct stat st;
	char p[512];

	return stat(vt_path(v, rel, p, sizeof(p)), &st) ? 0 : st.st_ino;
}

/* ---- btrfs ------------------------------------------------------------------ */

struct loopdev {
	char dev[32];
	int fd;
};

/* Attach a fresh sparse file of `mb` MiB to a free loop device. */
static int loop_attach(const char *file, int mb, struct loopdev *ld)
{
	int ctl, n, f;

	ld->fd = -1;
	f = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (f < 0 || ftruncate(f, (off_t)mb << 20))
		return -1;
	ctl = open("/dev/loop-control", O_RDWR);
	n = ctl < 0 ? -1 : ioctl(ctl, LOOP_CTL_GET_FREE);
	if (ctl >= 0)
		close(ctl);
	if (n < 0) {
		close(f);
		return -1;
	}
	snprintf(ld->dev, sizeof(ld->dev), "/dev/loop%d", n);
	ld->fd = open(ld->dev, O_RDWR);
	if (ld->fd < 0 || ioctl(ld->fd, LOOP_SET_FD, f)) {
		close(f);
		return -1;
	}
	close(f);
	return 0;
}

static void loop_detach(struct loopdev *ld)
{
	if (ld->fd >= 0) {
		ioctl(ld->fd, LOOP_CLR_FD, 0);
		close(ld->fd);
	}
	ld->fd = -1;
}

static const char *btrfs_policy =
	"{\"version\": 1, \"name\": \"vt-btrfs\","
	" \"runtime_defaults\": {\"file\": \"allow\", \"exec\": \"allow\"},"
	" \"runtime\": ["
	"  {\"id\": \"sub-secret\", \"file\": {\"path\": \"~/b/sub/secret\", \"ops\": [\"read\"]}, \"decision\": \"deny\"},"
	"  {\"id\": \"top-ro\", \"file\": {\"prefix\": \"~/b/top/\", \"ops\": [\"write\"]}, \"decision\": \"deny\"}"
	" ]}";

TEST(btrfs_subvolume_rules_match_their_object_only)
{
	struct loopdev ld = { .fd = -1 };
	char cmd[1280], img[512], mnt[512];
	bool mounted = false;
	struct vt v;

	vt_require_full();
	if (!have_fs("btrfs"))
		SKIP("no btrfs in this kernel (module not loaded)");
	if (access("/usr/sbin/mkfs.btrfs", X_OK))
		SKIP("no mkfs.btrfs in the guest (btrfs-progs)");
	if (vt_setup(&v, btrfs_policy))
		return;
	vt_path(&v, "img", img, sizeof(img));
	vt_path(&v, "b", mnt, sizeof(mnt));
	if (!ASSERT_OK(loop_attach(img, 160, &ld), "loop device"))
		goto out;
	snprintf(cmd, sizeof(cmd), "mkfs.btrfs -q -f %s >/dev/null 2>&1", ld.dev);
	if (!ASSERT_EQ(system(cmd), 0, "mkfs.btrfs") || !ASSERT_OK(mkdir(mnt, 0755), "mount point") ||
	    !ASSERT_OK(mount(ld.dev, mnt, "btrfs", 0, NULL), "mount btrfs"))
		goto out;
	mounted = true;
	snprintf(cmd, sizeof(cmd), "btrfs -q subvolume create %s/sub >/dev/null && "
		 "btrfs -q subvolume create %s/other >/dev/null", mnt, mnt);
	if (!ASSERT_EQ(system(cmd), 0, "two subvolumes") || vt_mkdirs(&v, "b/top"))
		goto out;
	/* the first file of each subvolume: the same inode number in each */
	vt_write_file(vt_path(&v, "b/sub/secret", img, sizeof(img)), "S\n", 0644);
	vt_write_file(vt_path(&v, "b/other/plain", img, sizeof(img)), "P\n", 0644);
	vt_write_file(vt_path(&v, "b/top/f", img, sizeof(img)), "T\n", 0644);
	printf("  inode numbers: sub/secret %lu, other/plain %lu\n",
	       (unsigned long)ino_of(&v, "b/sub/secret"), (unsigned long)ino_of(&v, "b/other/plain"));
	if (vt_install(&v))
		goto out;
	ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "b/sub/secret")),
		    "the rule on a file in a subvolume matches it");
	ASSERT_OK(vt_run(&v, open_rd, "b/other/plain"),
		  "a file with the same inode number in another subvolume is not matched");
	ASSERT_TRUE(vt_refused(vt_run(&v, open_wr, "b/top/f")),
		    "a subtree rule in the top-level subvolume matches below it");
	ASSERT_OK(vt_run(&v, open_rd, "b/top/f"), "for its ops only");
	ASSERT_OK(vt_run(&v, open_wr, "b/other/plain"), "and not in another subvolume");
out:
	if (mounted)
		umount2(mnt, MNT_DETACH);
	loop_detach(&ld);
	vt_teardown(&v);
}

/* ---- overlayfs ---------------------------------------------------------------- */

static const char *ovl_policy =
	"{\"version\": 1, \"name\": \"vt-overlay\","
	" \"runtime_defaults\": {\"file\": \"allow\", \"exec\": \"allow\"},"
	" \"runtime\": ["
	"  {\"id\": \"ovl-secret\", \"file\": {\"path\": \"~/o/merged/secret\", \"ops\": [\"read\"]}, \"decision\": \"deny\"},"
	"  {\"id\": \"ovl-ro\", \"file\": {\"prefix\": \"~/o/merged/ro/\", \"ops\": [\"write\"]}, \"decision\": \"deny\"}"
	" ]}";

/* lower and upper on two different file systems (the layout where a
 * file's st_dev is not the overlay's) */
TEST(overlayfs_rules_match_through_the_overlay_and_its_layers)
{
	char lower[512], upper[512], opts[1600], merged[512], lowfs[512], upfs[512];
	int mounted = 0;
	struct vt v;

	vt_require_full();
	if (!have_fs("overlay"))
		SKIP("no overlayfs in this kernel (module not loaded)");
	if (vt_setup(&v, ovl_policy))
		return;
	if (vt_mkdirs(&v, "o/lowfs") || vt_mkdirs(&v, "o/upfs") || vt_mkdirs(&v, "o/merged"))
		goto out;
	vt_path(&v, "o/lowfs", lowfs, sizeof(lowfs));
	vt_path(&v, "o/upfs", upfs, sizeof(upfs));
	if (!ASSERT_OK(mount("tmpfs", lowfs, "tmpfs", 0, "size=8m"), "lower tmpfs"))
		goto out;
	mounted = 1;
	if (!ASSERT_OK(mount("tmpfs", upfs, "tmpfs", 0, "size=8m"), "upper tmpfs"))
		goto out;
	mounted = 2;
	vt_mkdirs(&v, "o/lowfs/l/ro");
	vt_mkdirs(&v, "o/upfs/u");
	vt_mkdirs(&v, "o/upfs/w");
	vt_write_file(vt_path(&v, "o/lowfs/l/secret", lower, sizeof(lower)), "S\n", 0644);
	vt_write_file(vt_path(&v, "o/lowfs/l/plain", lower, sizeof(lower)), "P\n", 0644);
	vt_write_file(vt_path(&v, "o/lowfs/l/ro/f", lower, sizeof(lower)), "R\n", 0644);
	vt_path(&v, "o/lowfs/l", lower, sizeof(lower));
	vt_path(&v, "o/upfs/u", upper, sizeof(upper));
	vt_path(&v, "o/merged", merged, sizeof(merged));
	snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s/o/upfs/w", lower, upper,
		 v.home);
	if (!ASSERT_OK(mount("overlay", merged, "overlay", 0, opts), "mount overlay"))
		goto out;
	mounted = 3;
	{
		struct stat a, b;
		char p[512];

		stat(vt_path(&v, "o/merged/secret", p, sizeof(p)), &a);
		stat(merged, &b);
		printf("  st_dev: merged/secret %#lx, merged %#lx\n", (unsigned long)a.st_dev,
		       (unsigned long)b.st_dev);
	}
	if (vt_install(&v))
		goto out;
	ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "o/merged/secret")),
		    "the rule matches the file through the overlay");
	ASSERT_OK(vt_run(&v, open_rd, "o/merged/plain"), "its neighbour is readable");
	ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "o/lowfs/l/secret")),
		    "and the same file reached in its layer");
	ASSERT_TRUE(vt_refused(vt_run(&v, open_wr, "o/merged/ro/f")),
		    "a subtree rule matches below it through the overlay");
	ASSERT_OK(vt_run(&v, open_wr, "o/merged/plain"), "writing elsewhere works (copy-up)");
out:
	if (mounted >= 3)
		umount2(merged, MNT_DETACH);
	if (mounted >= 2)
		umount2(upfs, MNT_DETACH);
	if (mounted >= 1)
		umount2(lowfs, MNT_DETACH);
	vt_teardown(&v);
}
