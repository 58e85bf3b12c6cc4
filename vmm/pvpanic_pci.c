#include "pvpanic_pci.h"

#include <string.h>

#include "power.h"

#define PVPANIC_PCI_CLASS 0x088000 /* system peripheral, other */
#define PVPANIC_PCI_BAR_SIZE 4096

/* Only BAR 0's byte 0 is a register; the rest of the BAR reads 0 and
 * ignores writes, whatever offset and width the guest picks. */
static void bar_read(struct pci_dev *d, unsigned bar, uint64_t off, void *data, unsigned len)
{
	struct pvpanic_pci *p = d->opaque;
	memset(data, 0, len);
	if (bar == 0 && off == 0)
		power_pvpanic_ops.read(p->exit, 0, data, 1);
}

static void bar_write(struct pci_dev *d, unsigned bar, uint64_t off, const void *data, unsigned len)
{
	struct pvpanic_pci *p = d->opaque;
	(void)len;
	if (bar == 0 && off == 0)
		power_pvpanic_ops.write(p->exit, 0, data, 1);
}

static const struct pci_dev_ops pvpanic_pci_ops = { .bar_read = bar_read, .bar_write = bar_write };

int pvpanic_pci_init(struct pvpanic_pci *p, struct exit_latch *exit)
{
	memset(p, 0, sizeof(*p));
	p->exit = exit;
	pci_dev_init(&p->pci, PVPANIC_PCI_VENDOR, PVPANIC_PCI_DEVICE, PVPANIC_PCI_CLASS,
		     0x1af4, 0x1100);
	p->pci.ops = &pvpanic_pci_ops;
	p->pci.opaque = p;
	p->pci.no_intx = true;
	return pci_dev_add_bar(&p->pci, 0, PVPANIC_PCI_BAR_SIZE);
}
