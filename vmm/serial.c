#include "serial.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "console.h"
#include "exit.h"

/* register offsets and bits (PC16550D datasheet) */
#define R_RBR_THR_DLL 0
#define R_IER_DLM 1
#define R_IIR_FCR 2
#define R_LCR 3
#define R_MCR 4
#define R_LSR 5
#define R_MSR 6
#define R_SCR 7

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IER_MSI 0x08

#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO 0xc0

#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02

#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

#define RX_SIZE 256   /* more than a 16550's 16: pastes arrive in bursts */
#define LINE_SIZE 96

/* What the kernel prints on panic(); a fallback for guests without a
 * pvpanic driver. */
static const char panic_line[] = "Kernel panic - not syncing";
static const char panic_end[] = "---[ end Kernel panic";

struct serial {
	pthread_mutex_t lock;
	struct serial_cfg cfg;
	uint8_t ier, fcr, lcr, mcr, scr, dll, dlm;
	int thr_pending;  /* THR-empty interrupt latched, cleared by IIR read/THR write */
	int irq_level;
	uint8_t rx[RX_SIZE];
	unsigned rx_head, rx_count;
	char line[LINE_SIZE];
	unsigned line_len;
	int panic_done;
};

static uint8_t iir_of(const struct serial *s)
{
	uint8_t fifo = (s->fcr & FCR_ENABLE) ? IIR_FIFO : 0;
	if ((s->ier & IER_RDI) && s->rx_count)
		return IIR_RDI | fifo;
	if ((s->ier & IER_THRI) && s->thr_pending)
		return IIR_THRI | fifo;
	return IIR_NONE | fifo;
}

/* The UART's INTR output, gated by OUT2 as on the PC. The IOAPIC pin is
 * edge-triggered, so every low-to-high transition is one interrupt. */
static void update_irq(struct serial *s)
{
	int level = !(iir_of(s) & IIR_NONE) && (s->mcr & MCR_OUT2);
	if (level != s->irq_level) {
		s->irq_level = level;
		if (s->cfg.irq_line)
			(void)s->cfg.irq_line(s->cfg.irq_opaque, s->cfg.gsi, level);
	}
}

/* Does the line begin with what (after an optional "[  12.345678] "
 * printk timestamp)? Anchoring keeps a guest program that merely prints
 * the words from looking like a panic. */
static int line_starts(const char *line, const char *what)
{
	if (line[0] == '[') {
		const char *end = strchr(line, ']');
		if (!end || end[1] != ' ')
			return 0;
		line = end + 2;
	}
	return strncmp(line, what, strlen(what)) == 0;
}

static void watch_line(struct serial *s, uint8_t c)
{
	if (c == '\n' || c == '\r') {
		s->line[s->line_len] = 0;
		if (s->cfg.exit && line_starts(s->line, panic_line))
			exit_raise(s->cfg.exit, EXIT_EV_PANIC);
		if (line_starts(s->line, panic_end))
			s->panic_done = 1;
		s->line_len = 0;
	} else if (s->line_len < LINE_SIZE - 1) {
		s->line[s->line_len++] = (char)c;
	}
}

static void tx(struct serial *s, uint8_t c)
{
	if (s->mcr & MCR_LOOP) {
		if (s->rx_count < RX_SIZE)
			s->rx[(s->rx_head + s->rx_count++) % RX_SIZE] = c;
	} else {
		/* queued, never written here: a vCPU must not wait for the reader */
		if (s->cfg.out)
			(void)console_write(s->cfg.out, &c, 1);
		watch_line(s, c);
	}
	/* transmission is instant: THR is empty again right away */
	s->thr_pending = 1;
}

static uint8_t msr_of(const struct serial *s)
{
	if (s->mcr & MCR_LOOP) {
		uint8_t m = 0;
		if (s->mcr & MCR_RTS) m |= MSR_CTS;
		if (s->mcr & MCR_DTR) m |= MSR_DSR;
		if (s->mcr & MCR_OUT1) m |= MSR_RI;
		if (s->mcr & MCR_OUT2) m |= MSR_DCD;
		return m;
	}
	return MSR_DCD | MSR_DSR | MSR_CTS;
}

/* off < 8: the bus only dispatches accesses wholly inside our 8 ports */
static uint8_t reg_read(struct serial *s, unsigned off)
{
	uint8_t v = 0xff;

	switch (off) {
	case R_RBR_THR_DLL:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		v = 0;
		if (s->rx_count) {
			v = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % RX_SIZE;
			s->rx_count--;
		}
		return v;
	case R_IER_DLM:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case R_IIR_FCR:
		v = iir_of(s);
		if ((v & 0x0f) == IIR_THRI)
			s->thr_pending = 0;
		return v;
	case R_LCR:
		return s->lcr;
	case R_MCR:
		return s->mcr;
	case R_LSR:
		return LSR_THRE | LSR_TEMT | (s->rx_count ? LSR_DR : 0);
	case R_MSR:
		return msr_of(s);
	case R_SCR:
		return s->scr;
	}
	return v;
}

static void reg_write(struct serial *s, unsigned off, uint8_t v)
{
	switch (off) {
	case R_RBR_THR_DLL:
		if (s->lcr & LCR_DLAB)
			s->dll = v;
		else
			tx(s, v);
		break;
	case R_IER_DLM:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
		} else {
			/* enabling THRI with an empty THR raises it at once */
			if (!(s->ier & IER_THRI) && (v & IER_THRI))
				s->thr_pending = 1;
			s->ier = v & (IER_RDI | IER_THRI | IER_RLSI | IER_MSI);
		}
		break;
	case R_IIR_FCR:
		s->fcr = v & (FCR_ENABLE | 0xc0);
		if (v & FCR_CLEAR_RX)
			s->rx_head = s->rx_count = 0;
		break;
	case R_LCR:
		s->lcr = v;
		break;
	case R_MCR:
		s->mcr = v & 0x1f;
		break;
	case R_SCR:
		s->scr = v;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
}

static void serial_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct serial *s = opaque;
	memset(data, 0xff, len);
	if (len != 1) /* a 16550 has byte registers only; wider reads float */
		return;
	pthread_mutex_lock(&s->lock);
	*(uint8_t *)data = reg_read(s, (unsigned)off);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static void serial_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct serial *s = opaque;
	if (len != 1)
		return;
	pthread_mutex_lock(&s->lock);
	reg_write(s, (unsigned)off, *(const uint8_t *)data);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

const struct bus_ops serial_ops = { .read = serial_read, .write = serial_write };

int serial_new(struct serial **out, const struct serial_cfg *cfg, struct err *e)
{
	struct serial *s = calloc(1, sizeof(*s));
	if (!s)
		return errf(e, ENOMEM, "serial: out of memory");
	pthread_mutex_init(&s->lock, NULL);
	s->cfg = *cfg;
	s->thr_pending = 1;
	s->lcr = 0x03; /* 8N1, what firmware would leave */
	s->dll = 0x0c; /* 9600 baud */
	*out = s;
	return 0;
}

void serial_free(struct serial *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

size_t serial_input(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n = 0;
	pthread_mutex_lock(&s->lock);
	/* in loopback the receiver hears only the transmitter */
	if (!(s->mcr & MCR_LOOP)) {
		for (; n < len && s->rx_count < RX_SIZE; n++)
			s->rx[(s->rx_head + s->rx_count++) % RX_SIZE] = buf[n];
		update_irq(s);
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t serial_rx_space(struct serial *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = RX_SIZE - s->rx_count;
	pthread_mutex_unlock(&s->lock);
	return n;
}

int serial_panic_done(struct serial *s)
{
	pthread_mutex_lock(&s->lock);
	int d = s->panic_done;
	pthread_mutex_unlock(&s->lock);
	return d;
}
