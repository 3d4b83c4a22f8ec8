# SPDX-License-Identifier: GPL-2.0-only
"""blktap.vdisk against libvdisk and a real pool of regular files.

Run with /usr/bin/python3 -m unittest from vdisk/python, with
BLKTAP_LIBVDISK pointing at a build's libvdisk.so.
"""

import os
import shutil
import subprocess
import tempfile
import unittest

from blktap import vdisk

MB = 1 << 20


class VdiskTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir="/var/tmp", prefix="vdisk-py.")
        self.db = os.path.join(self.dir, "pool.sqlite")
        for name in ("p1", "p2"):
            with open(os.path.join(self.dir, name), "wb") as f:
                f.truncate(32 * MB)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def part(self, name):
        return os.path.join(self.dir, name)

    def test_format_create_lookup_list(self):
        vdisk.vd_format(self.part("p1"), 4 * MB, db=self.db)
        vdisk.vd_format(self.part("p2"), 4 * MB, db=self.db)
        self.assertEqual(vdisk.vd_freespace(db=self.db), 64)
        vid = vdisk.vd_create(40, db=self.db)
        runs = vdisk.vd_lookup(vid, db=self.db)
        self.assertEqual(sum(r["nr_sectors"] for r in runs) * 512, 40 * MB)
        self.assertEqual([r["device"] for r in runs],
                         [self.part("p1"), self.part("p2")])
        self.assertEqual(runs[0]["start_sector"], 0)
        self.assertEqual(vdisk.vd_freespace(db=self.db), 24)
        disks = vdisk.vd_list(db=self.db)
        self.assertEqual([(d["vdisk_id"], d["size_mb"], d["expires"])
                          for d in disks], [(vid, 40, 0)])

    def test_expiry_delete_refresh(self):
        vdisk.vd_format(self.part("p1"), 4 * MB, db=self.db)
        vid = vdisk.vd_create(8, 3600, db=self.db)
        self.assertGreater(vdisk.vd_list(db=self.db)[0]["expires"], 0)
        vdisk.vd_refresh(vid, 0, db=self.db)
        self.assertEqual(vdisk.vd_list(db=self.db)[0]["expires"], 0)
        vdisk.vd_delete(vid, db=self.db)
        self.assertEqual(vdisk.vd_list(db=self.db), [])
        self.assertTrue(vdisk.vd_list(db=self.db, all=True)[0]["expired"])
        with self.assertRaises(vdisk.VdiskError) as cm:
            vdisk.vd_lookup(vid, db=self.db)
        self.assertIn("VD %d has expired" % vid, str(cm.exception))
        vdisk.vd_undelete(vid, db=self.db)
        self.assertEqual(len(vdisk.vd_lookup(vid, db=self.db)), 1)

    def test_errors_carry_the_message(self):
        vdisk.vd_format(self.part("p1"), 4 * MB, db=self.db)
        with self.assertRaises(vdisk.VdiskError) as cm:
            vdisk.vd_format(self.part("p1"), db=self.db)
        self.assertIn("already in the pool", str(cm.exception))
        with self.assertRaises(vdisk.VdiskError) as cm:
            vdisk.vd_create(100, db=self.db)
        self.assertIn("100 MiB asked for, the free pool has 32 MiB",
                      str(cm.exception))
        self.assertEqual(cm.exception.errno, 28)  # ENOSPC
        with self.assertRaises(vdisk.VdiskError) as cm:
            vdisk.vd_delete(12345, db=self.db)
        self.assertIn("VD 12345: no such disk", str(cm.exception))

    def test_same_pool_as_the_commands(self):
        bindir = os.environ.get("VDISK_BIN")
        if not bindir:
            self.skipTest("VDISK_BIN is not set")
        vdisk.vd_format(self.part("p1"), 4 * MB, db=self.db)
        out = subprocess.check_output([bindir + "/vd_create", "--db",
                                       self.db, "12"])
        vid = int(out)
        self.assertEqual(vdisk.vd_list(db=self.db)[0]["vdisk_id"], vid)
        vdisk.vd_enlarge(vid, 20, db=self.db)
        out = subprocess.check_output([bindir + "/vd_list", "--db", self.db,
                                       "--json"])
        self.assertIn('"size_mb":20', out.decode())

    def test_env_default_database(self):
        os.environ["VDISK_DB"] = self.db
        try:
            vdisk.vd_format(self.part("p2"), 8 * MB)
            self.assertEqual(vdisk.vd_freespace(), 32)
        finally:
            del os.environ["VDISK_DB"]


if __name__ == "__main__":
    unittest.main()
