# SPDX-License-Identifier: GPL-2.0-only
"""blktap: Python glue for the blktap toolstack (see blktap.vdisk)."""
