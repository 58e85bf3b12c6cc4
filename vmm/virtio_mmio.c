#include "virtio_mmio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_pci.h>

#include "layout.h"
#include "virtio_pci.h"

/* Registers that are plain common cfg fields, and where they sit there.
 * Feature words, ring addresses and status are the same state under
 * both transports, so they are vetted in one place (virtio_pci.c). */
static const struct {
	uint16_t reg;
	uint8_t cc, len; /* common cfg offset, and the field's width there */
} map[] = {
	{ VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_PCI_COMMON_DF, 4 },
	{ VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_PCI_COMMON_DFSELECT, 4 },
	{ VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_PCI_COMMON_GF, 4 },
	{ VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_PCI_COMMON_GFSELECT, 4 },
	{ VIRTIO_MMIO_QUEUE_SEL, VIRTIO_PCI_COMMON_Q_SELECT, 2 },
	{ VIRTIO_MMIO_QUEUE_NUM, VIRTIO_PCI_COMMON_Q_SIZE, 2 },
	{ VIRTIO_MMIO_STATUS, VIRTIO_PCI_COMMON_STATUS, 1 },
	{ VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_PCI_COMMON_Q_DESCLO, 4 },
	{ VIRTIO_MMIO_QUEUE_DESC_HIGH, VIRTIO_PCI_COMMON_Q_DESCHI, 4 },
	{ VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_PCI_COMMON_Q_AVAILLO, 4 },
	{ VIRTIO_MMIO_QUEUE_AVAIL_HIGH, VIRTIO_PCI_COMMON_Q_AVAILHI, 4 },
	{ VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_PCI_COMMON_Q_USEDLO, 4 },
	{ VIRTIO_MMIO_QUEUE_USED_HIGH, VIRTIO_PCI_COMMON_Q_USEDHI, 4 },
	{ VIRTIO_MMIO_CONFIG_GENERATION, VIRTIO_PCI_COMMON_CFGGENERATION, 1 },
};

static int find(uint64_t reg)
{
	for (unsigned i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (map[i].reg == reg)
			return (int)i;
	return -1;
}

static uint16_t qsel(struct vpci *v)
{
	uint16_t q = 0;
	vpci_common_read(v, VIRTIO_PCI_COMMON_Q_SELECT, &q, 2);
	return q;
}

static uint32_t reg_read(struct vpci *v, uint64_t reg)
{
	uint32_t val = 0;
	int i = find(reg);
	if (i >= 0) {
		vpci_common_read(v, map[i].cc, &val, map[i].len);
		return val;
	}
	switch (reg) {
	case VIRTIO_MMIO_MAGIC_VALUE: return VMMIO_MAGIC;
	case VIRTIO_MMIO_VERSION: return VMMIO_VERSION;
	case VIRTIO_MMIO_DEVICE_ID: return v->type;
	case VIRTIO_MMIO_VENDOR_ID: return VMMIO_VENDOR;
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		/* 0 tells the driver the selected queue does not exist */
		return qsel(v) < v->nq ? v->queue_max : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		vpci_common_read(v, VIRTIO_PCI_COMMON_Q_ENABLE, &val, 2);
		return val;
	case VIRTIO_MMIO_INTERRUPT_STATUS: return vpci_isr_peek(v);
	/* no shared memory regions: every length and base reads all-ones */
	case VIRTIO_MMIO_SHM_LEN_LOW: case VIRTIO_MMIO_SHM_LEN_HIGH:
	case VIRTIO_MMIO_SHM_BASE_LOW: case VIRTIO_MMIO_SHM_BASE_HIGH:
		return 0xffffffffu;
	default: return 0; /* write-only or reserved */
	}
}

static void reg_write(struct vpci *v, uint64_t reg, uint32_t val)
{
	int i = find(reg);
	if (i >= 0) {
		/* the field's own width: a status above 8 bits, a queue index
		 * above 16, lose the high bits as they would on PCI */
		vpci_common_write(v, map[i].cc, &val, map[i].len);
		return;
	}
	switch (reg) {
	case VIRTIO_MMIO_QUEUE_READY:
		if (val) {
			uint16_t one = 1;
			vpci_common_write(v, VIRTIO_PCI_COMMON_Q_ENABLE, &one, 2);
		} else if (vpci_queue_disable(v, qsel(v))) {
			/* after DRIVER_OK the device owns the ring: the queue
			 * stays ready, which the driver reads back */
		}
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		/* the index is the guest's: vpci_notify ignores unknown ones */
		vpci_notify(v, val);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		vpci_isr_ack(v, (uint8_t)(val & (VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG)));
		break;
	default: break; /* read-only, legacy (GuestPageSize, QueuePFN) or reserved */
	}
}

static void mmio_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct vpci *v = opaque;
	memset(data, 0, len);
	if (off >= VIRTIO_MMIO_CONFIG) {
		vpci_devcfg_read(v, off - VIRTIO_MMIO_CONFIG, data, len);
		return;
	}
	/* registers take aligned 32-bit accesses only (4.2.2.2) */
	if (len != 4 || off % 4)
		return;
	uint32_t val = reg_read(v, off);
	memcpy(data, &val, 4);
}

static void mmio_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct vpci *v = opaque;
	if (off >= VIRTIO_MMIO_CONFIG) {
		vpci_devcfg_write(v, off - VIRTIO_MMIO_CONFIG, data, len);
		return;
	}
	if (len != 4 || off % 4)
		return;
	uint32_t val;
	memcpy(&val, data, 4);
	reg_write(v, off, val);
}

const struct bus_ops vmmio_ops = { .read = mmio_read, .write = mmio_write };

int vmmio_cmdline(char *buf, size_t cap, unsigned n)
{
	size_t len = 0;
	if (n > LAYOUT_VIRTIO_MMIO_MAX)
		return -EINVAL;
	if (cap)
		buf[0] = 0;
	for (unsigned i = 0; i < n; i++) {
		int w = snprintf(buf + len, cap - len, " virtio_mmio.device=%lluK@0x%llx:%u",
				 (unsigned long long)(LAYOUT_VIRTIO_MMIO_SIZE >> 10),
				 (unsigned long long)(LAYOUT_VIRTIO_MMIO + i * LAYOUT_VIRTIO_MMIO_SIZE),
				 LAYOUT_VIRTIO_MMIO_GSI(i));
		if (w < 0 || (size_t)w >= cap - len)
			return -ENOSPC;
		len += (size_t)w;
	}
	return (int)len;
}
