/* SPDX-License-Identifier: GPL-2.0-only */
/* The built-in drivers' ops tables, for the driver registry in image.c. */
#ifndef TD_DRIVERS_H
#define TD_DRIVERS_H

#include "image.h"

/* raw file or block device, O_DIRECT: "aio:PATH" */
extern const struct td_driver td_driver_aio;
/* raw file or block device through the page cache: "sync:PATH" */
extern const struct td_driver td_driver_sync;
/* memory, optionally shared between processes: "ram:NAME?size=SIZE" */
extern const struct td_driver td_driver_ram;
extern const struct td_driver td_driver_qcow2;
extern const struct td_driver td_driver_qcow;
extern const struct td_driver td_driver_vd;

#endif
