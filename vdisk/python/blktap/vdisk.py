# SPDX-License-Identifier: GPL-2.0-only
"""The virtual-disk pool, as Xen 1.2's XenoUtil module offered it.

A thin ctypes layer over libvdisk (the library the vd_* commands and
tapdisk's vd driver use), so Python and the commands share one
implementation and one database. Every function takes an optional ``db``
path (default: $VDISK_DB, else /var/lib/xen_vdisks.sqlite) and raises
VdiskError, carrying libvdisk's message and errno, when the pool refuses.
"""

import ctypes
import ctypes.util
import os

__all__ = ["VdiskError", "vd_format", "vd_create", "vd_refresh",
           "vd_delete", "vd_undelete", "vd_enlarge", "vd_lookup",
           "vd_list", "vd_freespace"]

MB = 1 << 20


class VdiskError(OSError):
    """A pool operation failed; str() is libvdisk's message."""


class _Run(ctypes.Structure):
    _fields_ = [("device", ctypes.c_char_p), ("start", ctypes.c_uint64),
                ("sectors", ctypes.c_uint64)]


class _Info(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int64), ("size", ctypes.c_uint64),
                ("created", ctypes.c_int64), ("expires", ctypes.c_int64),
                ("expired", ctypes.c_bool), ("reused", ctypes.c_bool),
                ("nextents", ctypes.c_uint)]


class _Space(ctypes.Structure):
    _fields_ = [("free_bytes", ctypes.c_uint64),
                ("total_bytes", ctypes.c_uint64),
                ("free_extents", ctypes.c_uint64),
                ("dirty_extents", ctypes.c_uint64),
                ("devices", ctypes.c_uint)]


class _CreateOpts(ctypes.Structure):
    _fields_ = [("no_scrub", ctypes.c_bool), ("progress", ctypes.c_void_p),
                ("progress_arg", ctypes.c_void_p)]


def _load():
    # $BLKTAP_LIBVDISK (tests against a build tree), the copy installed
    # beside this module, then the system's library path
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "libvdisk.so")
    for cand in (os.environ.get("BLKTAP_LIBVDISK"), here,
                 ctypes.util.find_library("vdisk")):
        if cand and (os.path.exists(cand) or "/" not in cand):
            return ctypes.CDLL(cand)
    raise ImportError("libvdisk.so not found (set BLKTAP_LIBVDISK)")


_lib = _load()
_P = ctypes.c_void_p
for _name, _args in {
        "vdisk_new": [], "vdisk_free": [_P], "vdisk_errmsg": [_P],
        "vdisk_open": [_P, ctypes.c_char_p, ctypes.c_uint],
        "vdisk_format": [_P, ctypes.c_char_p, ctypes.c_uint64],
        "vdisk_create": [_P, ctypes.c_uint64, ctypes.c_int64,
                         ctypes.POINTER(_CreateOpts),
                         ctypes.POINTER(ctypes.c_int64)],
        "vdisk_enlarge": [_P, ctypes.c_int64, ctypes.c_uint64,
                          ctypes.POINTER(_CreateOpts)],
        "vdisk_refresh": [_P, ctypes.c_int64, ctypes.c_int64],
        "vdisk_delete": [_P, ctypes.c_int64],
        "vdisk_undelete": [_P, ctypes.c_int64],
        "vdisk_lookup": [_P, ctypes.c_int64, ctypes.c_uint,
                         ctypes.POINTER(ctypes.POINTER(_Run)),
                         ctypes.POINTER(ctypes.c_size_t)],
        "vdisk_runs_free": [ctypes.POINTER(_Run), ctypes.c_size_t],
        "vdisk_list": [_P, ctypes.c_uint,
                       ctypes.POINTER(ctypes.POINTER(_Info)),
                       ctypes.POINTER(ctypes.c_size_t)],
        "vdisk_freespace": [_P, ctypes.POINTER(_Space)],
}.items():
    _f = getattr(_lib, _name)
    _f.argtypes = _args
    _f.restype = ctypes.c_int
_lib.vdisk_new.restype = _P
_lib.vdisk_free.restype = None
_lib.vdisk_runs_free.restype = None
_lib.vdisk_errmsg.restype = ctypes.c_char_p
_libc = ctypes.CDLL(None)
_libc.free.argtypes = [_P]


class _Pool:
    """One open database for the length of a call."""

    def __init__(self, db):
        self.h = _lib.vdisk_new()
        if not self.h:
            raise MemoryError()
        self.check(_lib.vdisk_open(self.h, db.encode() if db else None, 0))

    def check(self, rc):
        if rc < 0:
            msg = _lib.vdisk_errmsg(self.h).decode(errors="replace")
            raise VdiskError(-rc, msg)
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _lib.vdisk_free(self.h)


def _opts(scrub):
    return ctypes.byref(_CreateOpts(no_scrub=not scrub))


def vd_format(device, extent_size=0, db=None):
    """Add a partition (or file) to the free pool; extent_size in bytes."""
    with _Pool(db) as p:
        p.check(_lib.vdisk_format(p.h, device.encode(), extent_size))


def vd_create(size_mb, expiry=0, db=None, scrub=True):
    """Create a disk of size_mb MB expiring in expiry seconds (0 never);
    returns its id."""
    vid = ctypes.c_int64()
    with _Pool(db) as p:
        p.check(_lib.vdisk_create(p.h, int(size_mb) * MB, int(expiry),
                                  _opts(scrub), ctypes.byref(vid)))
    return vid.value


def vd_enlarge(vdisk_id, size_mb, db=None, scrub=True):
    with _Pool(db) as p:
        p.check(_lib.vdisk_enlarge(p.h, int(vdisk_id), int(size_mb) * MB,
                                   _opts(scrub)))


def vd_refresh(vdisk_id, expiry, db=None):
    """A new expiry, seconds from now (0 never), for a live disk."""
    with _Pool(db) as p:
        p.check(_lib.vdisk_refresh(p.h, int(vdisk_id), int(expiry)))


def vd_delete(vdisk_id, db=None):
    with _Pool(db) as p:
        p.check(_lib.vdisk_delete(p.h, int(vdisk_id)))


def vd_undelete(vdisk_id, db=None):
    with _Pool(db) as p:
        p.check(_lib.vdisk_undelete(p.h, int(vdisk_id)))


def vd_lookup(vdisk_id, db=None):
    """The disk's extent map: a list of {'device', 'start_sector',
    'nr_sectors'} in disk order, the last trimmed to the disk's size."""
    runs = ctypes.POINTER(_Run)()
    n = ctypes.c_size_t()
    with _Pool(db) as p:
        p.check(_lib.vdisk_lookup(p.h, int(vdisk_id), 0, ctypes.byref(runs),
                                  ctypes.byref(n)))
    try:
        return [{"device": runs[i].device.decode(),
                 "start_sector": runs[i].start,
                 "nr_sectors": runs[i].sectors} for i in range(n.value)]
    finally:
        _lib.vdisk_runs_free(runs, n)


def vd_list(db=None, all=False):
    """Live disks (all=True: expired ones too), as dicts."""
    info = ctypes.POINTER(_Info)()
    n = ctypes.c_size_t()
    with _Pool(db) as p:
        p.check(_lib.vdisk_list(p.h, 1 if all else 0, ctypes.byref(info),
                                ctypes.byref(n)))
    try:
        return [{"vdisk_id": v.id, "size_mb": v.size // MB, "size": v.size,
                 "created": v.created, "expires": v.expires,
                 "expired": v.expired, "reused": v.reused,
                 "extents": v.nextents}
                for v in (info[i] for i in range(n.value))]
    finally:
        _libc.free(ctypes.cast(info, _P))


def vd_freespace(db=None):
    """Free space of the pool in MB."""
    s = _Space()
    with _Pool(db) as p:
        p.check(_lib.vdisk_freespace(p.h, ctypes.byref(s)))
    return s.free_bytes // MB
