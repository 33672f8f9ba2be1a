/* SPDX-License-Identifier: MIT */
/* CRIU image magics and flag values (docs/images.md). */
#ifndef LP_MAGIC_H
#define LP_MAGIC_H

#define IMG_COMMON_MAGIC  0x54564319U
#define IMG_SERVICE_MAGIC 0x55105940U
#define INVENTORY_MAGIC	  0x58313116U
#define PSTREE_MAGIC	  0x50273030U
#define CORE_MAGIC	  0x55053847U
#define IDS_MAGIC	  0x54432030U
#define MM_MAGIC	  0x57492820U
#define PAGEMAP_MAGIC	  0x56084025U
#define RAW_IMAGE_MAGIC	  0U

#define CRTOOLS_IMAGES_V1   1
#define CRTOOLS_IMAGES_V1_1 2

/* task_core_entry.task_state */
#define TASK_ALIVE   1
#define TASK_DEAD    2
#define TASK_STOPPED 3

#endif
