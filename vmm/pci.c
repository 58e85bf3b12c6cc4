#include "pci.h"

#include <string.h>
#include <linux/pci_regs.h>

#include "layout.h"

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

void pci_dev_init(struct pci_dev *d, uint16_t vendor, uint16_t device,
		  uint32_t class_code, uint16_t sub_vendor, uint16_t sub_device)
{
	memset(d->cfg, 0, sizeof(d->cfg));
	memset(d->wmask, 0, sizeof(d->wmask));
	memset(d->bar_size, 0, sizeof(d->bar_size));
	put16(d->cfg + PCI_VENDOR_ID, vendor);
	put16(d->cfg + PCI_DEVICE_ID, device);
	/* class code is the top 24 bits of the dword holding the revision */
	put32(d->cfg + PCI_CLASS_REVISION, (class_code << 8) | (get32(d->cfg + 8) & 0xff));
	d->cfg[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;
	put16(d->cfg + PCI_SUBSYSTEM_VENDOR_ID, sub_vendor);
	put16(d->cfg + PCI_SUBSYSTEM_ID, sub_device);
	put16(d->wmask + PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY |
	      PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;
	d->cap_last = 0;
	d->cap_next = 0x40;
	d->no_intx = false;
}

int pci_dev_add_bar(struct pci_dev *d, unsigned bar, uint32_t size)
{
	if (bar >= PCI_NUM_BARS || size < 4096 || (size & (size - 1)))
		return -EINVAL;
	d->bar_size[bar] = size;
	unsigned off = PCI_BASE_ADDRESS_0 + 4 * bar;
	/* 32-bit, non-prefetchable memory BAR: type bits are read-only 0;
	 * only the address bits above the size are writable */
	put32(d->cfg + off, PCI_BASE_ADDRESS_SPACE_MEMORY | PCI_BASE_ADDRESS_MEM_TYPE_32);
	put32(d->wmask + off, ~(size - 1));
	return 0;
}

int pci_dev_add_cap(struct pci_dev *d, uint8_t id, unsigned len)
{
	unsigned at = (d->cap_next + 3u) & ~3u;
	if (len < 2 || at + len > sizeof(d->cfg))
		return -ENOSPC;
	d->cfg[at] = id;
	d->cfg[at + 1] = 0;
	if (d->cap_last)
		d->cfg[d->cap_last + 1] = (uint8_t)at;
	else
		d->cfg[PCI_CAPABILITY_LIST] = (uint8_t)at;
	put16(d->cfg + PCI_STATUS, PCI_STATUS_CAP_LIST);
	d->cap_last = (uint8_t)at;
	d->cap_next = (uint8_t)(at + len);
	return (int)at;
}

unsigned pci_slot_gsi(unsigned slot)
{
	/* the DSDT's _PRT routes with the same macro */
	return LAYOUT_PCI_INTX_GSI(slot, 0);
}

uint64_t pci_bar_base(const struct pci_dev *d, unsigned bar)
{
	if (bar >= PCI_NUM_BARS || !d->bar_size[bar])
		return 0;
	if (!(d->cfg[PCI_COMMAND] & PCI_COMMAND_MEMORY))
		return 0;
	return get32(d->cfg + PCI_BASE_ADDRESS_0 + 4 * bar) & PCI_BASE_ADDRESS_MEM_MASK;
}

static struct pci_dev *conf1_dev(struct pci_bus *b, unsigned *reg)
{
	uint32_t a = b->addr;
	if (!(a & 0x80000000u))
		return NULL;
	unsigned bus = (a >> 16) & 0xff, slot = (a >> 11) & 0x1f, fn = (a >> 8) & 7;
	if (bus != 0 || fn != 0)
		return NULL;
	*reg = a & 0xfc;
	return b->dev[slot];
}

static void conf1_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct pci_bus *b = opaque;
	memset(data, 0xff, len);
	pthread_mutex_lock(&b->lock);
	if (off == 0 && len == 4) {
		memcpy(data, &b->addr, 4);
	} else if (off >= 4 && off + len <= 8) {
		unsigned reg;
		struct pci_dev *d = conf1_dev(b, &reg);
		if (d)
			memcpy(data, d->cfg + reg + (off - 4), len);
	}
	pthread_mutex_unlock(&b->lock);
}

static void conf1_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct pci_bus *b = opaque;
	pthread_mutex_lock(&b->lock);
	if (off == 0 && len == 4) {
		memcpy(&b->addr, data, 4);
	} else if (off >= 4 && off + len <= 8) {
		unsigned reg;
		struct pci_dev *d = conf1_dev(b, &reg);
		if (d) {
			unsigned at = reg + (unsigned)(off - 4);
			const uint8_t *v = data;
			for (unsigned i = 0; i < len; i++)
				d->cfg[at + i] = (uint8_t)((d->cfg[at + i] & ~d->wmask[at + i]) |
							   (v[i] & d->wmask[at + i]));
			if (d->ops && d->ops->cfg_written)
				d->ops->cfg_written(d, at, len);
		}
	}
	/* other accesses to 0xcf8-0xcfb (e.g. Linux's byte probe of 0xcfb)
	 * are ignored: there is no mechanism #2 here */
	pthread_mutex_unlock(&b->lock);
}

const struct bus_ops pci_conf1_ops = { .read = conf1_read, .write = conf1_write };

/* Find the BAR that decodes gpa right now. */
static struct pci_dev *route(struct pci_bus *b, uint64_t gpa, unsigned *bar, uint64_t *off)
{
	struct pci_dev *hit = NULL;
	pthread_mutex_lock(&b->lock);
	for (unsigned s = 0; s < PCI_MAX_SLOTS && !hit; s++) {
		struct pci_dev *d = b->dev[s];
		if (!d)
			continue;
		for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
			uint64_t base = pci_bar_base(d, i);
			if (!base || gpa < base || gpa - base >= d->bar_size[i])
				continue;
			hit = d;
			*bar = i;
			*off = gpa - base;
			break;
		}
	}
	pthread_mutex_unlock(&b->lock);
	return hit;
}

static void mmio_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct pci_bus *b = opaque;
	unsigned bar;
	uint64_t boff;
	memset(data, 0xff, len);
	struct pci_dev *d = route(b, LAYOUT_PCI_MMIO + off, &bar, &boff);
	/* an access straddling the BAR's end is not decoded */
	if (d && boff + len <= d->bar_size[bar] && d->ops && d->ops->bar_read)
		d->ops->bar_read(d, bar, boff, data, len);
}

static void mmio_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct pci_bus *b = opaque;
	unsigned bar;
	uint64_t boff;
	struct pci_dev *d = route(b, LAYOUT_PCI_MMIO + off, &bar, &boff);
	if (d && boff + len <= d->bar_size[bar] && d->ops && d->ops->bar_write)
		d->ops->bar_write(d, bar, boff, data, len);
}

const struct bus_ops pci_mmio_ops = { .read = mmio_read, .write = mmio_write };

int pci_bus_init(struct pci_bus *b, struct bus *pio, struct bus *mmio, struct err *e)
{
	int rc;

	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->lock, NULL);
	b->mmio_next = LAYOUT_PCI_MMIO;
	/* any host bridge will do; Linux only wants class 06.00 at 00.0 */
	pci_dev_init(&b->host, 0x8086, 0x1237, 0x060000, 0, 0);
	b->dev[0] = &b->host;
	if (pio) {
		rc = bus_register(pio, LAYOUT_PORT_PCI_CONF, 8, &pci_conf1_ops, b);
		if (rc)
			return errf(e, -rc, "pci: cannot claim ports 0xcf8-0xcff: %s", strerror(-rc));
	}
	if (mmio) {
		rc = bus_register(mmio, LAYOUT_PCI_MMIO, LAYOUT_PCI_MMIO_END - LAYOUT_PCI_MMIO,
				  &pci_mmio_ops, b);
		if (rc)
			return errf(e, -rc, "pci: cannot claim the MMIO window: %s", strerror(-rc));
	}
	return 0;
}

int pci_bus_add(struct pci_bus *b, struct pci_dev *d, struct err *e)
{
	unsigned slot;
	for (slot = 1; slot < PCI_MAX_SLOTS && b->dev[slot]; slot++)
		;
	if (slot == PCI_MAX_SLOTS)
		return errf(e, ENOSPC, "pci: no free slot");
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		uint64_t size = d->bar_size[i];
		if (!size)
			continue;
		uint64_t at = (b->mmio_next + size - 1) & ~(size - 1);
		if (at + size > LAYOUT_PCI_MMIO_END)
			return errf(e, ENOSPC, "pci: MMIO window full");
		unsigned off = PCI_BASE_ADDRESS_0 + 4 * i;
		put32(d->cfg + off, (uint32_t)at | (get32(d->cfg + off) & ~PCI_BASE_ADDRESS_MEM_MASK));
		b->mmio_next = at + size;
	}
	d->slot = slot;
	d->cfg[PCI_INTERRUPT_PIN] = d->no_intx ? 0 : 1; /* INTA# */
	d->cfg[PCI_INTERRUPT_LINE] = d->no_intx ? 0 : (uint8_t)pci_slot_gsi(slot);
	/* no firmware runs, so decoding starts on as a BIOS would leave it */
	put16(d->cfg + PCI_COMMAND, PCI_COMMAND_MEMORY);
	pthread_mutex_lock(&b->lock);
	b->dev[slot] = d;
	pthread_mutex_unlock(&b->lock);
	return (int)slot;
}

void pci_bus_destroy(struct pci_bus *b)
{
	pthread_mutex_destroy(&b->lock);
}
