/* runloop.c with serial.c and console.c, no guest: the three ways the
 * console used to take the VMM hostage (issue 8), each driven through
 * the real loop, each bounded by a watchdog so a regression fails
 * instead of hanging:
 *  1. a guest that fills the UART's receive buffer (loopback) must not
 *     stop Ctrl-A x from being read;
 *  2. a vCPU printing to a full pipe nobody reads must neither block
 *     itself nor the loop (SIGTERM still obeyed), and says so once;
 *  3. output waiting for a full pipe must not block the loop itself.
 * Plus: input typed while the UART is full reaches the guest later, in
 * order; the panic tail wait; a closed stdin. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "console.h"
#include "exit.h"
#include "runloop.h"
#include "serial.h"
#include "t.h"

#define BOUND_MS 3000

static struct serial *s;
static struct exit_latch x;
static struct console *out;
static int sfd, in_w, in_r, out_r, out_w;

static void wr(unsigned off, uint8_t v)
{
	serial_ops.write(s, off, &v, 1);
}

static uint8_t rd(unsigned off)
{
	uint8_t v = 0;
	serial_ops.read(s, off, &v, 1);
	return v;
}

struct loop_run {
	struct runloop_cfg cfg;
	enum exit_event ev;
	int sig;
	volatile int done;
};

static void *loop_thread(void *arg)
{
	struct loop_run *r = arg;
	r->ev = runloop_run(&r->cfg, &r->sig);
	r->done = 1;
	return NULL;
}

static void sleep_ms(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&t, NULL);
}

static int (*start_button)(void *); /* the next loop's power button */
static int (*start_report)(void *); /* the next loop's device report */
static void (*start_tick)(void *);  /* the next loop's tick */

/* Start the loop in a thread; the test then acts as the user/guest. */
static int start(struct loop_run *r, pthread_t *th)
{
	memset(r, 0, sizeof(*r));
	r->cfg = (struct runloop_cfg){ .sig_fd = sfd, .in_fd = in_r, .exit = &x,
				       .serial = s, .out = out, .power_button = start_button,
				       .report = start_report, .tick = start_tick };
	return pthread_create(th, NULL, loop_thread, r);
}

/* Wait at most ms for the loop to end. A loop that is stuck stays stuck:
 * the test reports it and exits without cleaning up. */
static int finish(struct loop_run *r, pthread_t th, long ms)
{
	for (long t = 0; t < ms && !r->done; t += 10)
		sleep_ms(10);
	if (!r->done)
		return -1;
	pthread_join(th, NULL);
	return 0;
}

static void bail(const char *why)
{
	printf("not ok - %s (stuck: giving up)\n", why);
	fflush(stdout);
	_exit(1);
}

static void setup(int out_fd)
{
	struct err e;
	int p[2];

	x = (struct exit_latch){ 0, -1 };
	if (exit_init(&x, &e))
		bail("exit_init");
	if (pipe2(p, O_CLOEXEC))
		bail("pipe");
	in_r = p[0];
	in_w = p[1];
	out = NULL;
	if (out_fd >= 0 && console_new(&out, out_fd, &e))
		bail("console_new");
	struct serial_cfg sc = { .out = out, .exit = &x };
	if (serial_new(&s, &sc, &e))
		bail("serial_new");
	wr(4, 0x0b); /* DTR RTS OUT2 */
}

static void teardown(void)
{
	serial_free(s);
	console_free(out, 200);
	close(in_r);
	close(in_w);
	exit_fini(&x);
}

/* A pipe whose buffer is full and that nobody reads; blocking writer end. */
static void full_pipe(void)
{
	int p[2];
	char junk[4096];
	memset(junk, 'j', sizeof(junk));
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK))
		bail("pipe");
	while (write(p[1], junk, sizeof(junk)) > 0)
		;
	fcntl(p[1], F_SETFL, 0);
	out_r = p[0];
	out_w = p[1];
}

struct guest {
	size_t n;
	volatile int done;
};

/* A vCPU printing n bytes through the THR, as the guest's driver does. */
static void *guest_print(void *arg)
{
	struct guest *g = arg;
	for (size_t i = 0; i < g->n; i++)
		wr(0, (uint8_t)('a' + i % 26));
	g->done = 1;
	return NULL;
}

static void test_rx_full_escape(void)
{
	struct loop_run r;
	pthread_t th;

	setup(-1);
	/* the guest fills its own receive buffer through loopback */
	wr(4, 0x1b);
	for (int i = 0; i < 1024; i++)
		wr(0, 'L');
	CHECK_EQ(serial_rx_space(s), 0, "1: loopback filled the UART's receive buffer");
	if (start(&r, &th))
		bail("pthread_create");
	CHECK(write(in_w, "typed\x01x", 7) == 7, "1: user types, then Ctrl-A x");
	if (finish(&r, th, BOUND_MS))
		bail("1: Ctrl-A x with the UART's receive buffer full ends the loop");
	CHECK_EQ(r.ev, EXIT_EV_QUIT, "1: Ctrl-A x with the UART's receive buffer full ends the loop");
	teardown();
}

static void test_held_input(void)
{
	struct loop_run r;
	pthread_t th;

	setup(-1);
	uint8_t fill[1024];
	memset(fill, 'f', sizeof(fill));
	size_t took = serial_input(s, fill, sizeof(fill));
	CHECK_EQ(serial_rx_space(s), 0, "held: UART full (%zu bytes)", took);
	if (start(&r, &th))
		bail("pthread_create");
	CHECK(write(in_w, "abc\x01\x01z", 6) == 6, "held: user types abc, Ctrl-A Ctrl-A, z");
	sleep_ms(100);
	/* the guest reads what was there, then finds the typed bytes */
	for (size_t i = 0; i < took; i++)
		(void)rd(0);
	char got[5] = "";
	for (int t = 0; t < 200 && !(rd(5) & 1); t++)
		sleep_ms(10);
	for (int i = 0; i < 5 && (rd(5) & 1); i++)
		got[i] = (char)rd(0);
	CHECK(!memcmp(got, "abc\x01z", 5), "held: typed bytes reach the guest in order once it reads");
	CHECK(write(in_w, "\x01x", 2) == 2, "held: Ctrl-A x");
	if (finish(&r, th, BOUND_MS))
		bail("held: loop ends");
	CHECK_EQ(r.ev, EXIT_EV_QUIT, "held: loop ends on Ctrl-A x");
	teardown();
}

static void test_vcpu_full_pipe(void)
{
	struct loop_run r;
	pthread_t th, gt;
	struct guest g = { .n = 3 * CONSOLE_QUEUE };

	full_pipe();
	/* stderr to a file, to count the notes */
	FILE *errf = tmpfile();
	int saved = dup(STDERR_FILENO);
	if (!errf || saved < 0)
		bail("tmpfile");
	dup2(fileno(errf), STDERR_FILENO);

	setup(out_w);
	if (pthread_create(&gt, NULL, guest_print, &g))
		bail("pthread_create");
	if (start(&r, &th))
		bail("pthread_create");
	for (int t = 0; t < BOUND_MS / 10 && !g.done; t += 1)
		sleep_ms(10);
	CHECK(g.done, "2: a vCPU printing to a full pipe nobody reads is not blocked");
	CHECK(write(in_w, "x", 1) == 1, "2: user types");
	kill(getpid(), SIGTERM);
	if (finish(&r, th, BOUND_MS)) {
		dup2(saved, STDERR_FILENO);
		bail("2: SIGTERM ends the loop while the console's reader is stalled");
	}
	CHECK(r.ev == EXIT_EV_NONE && r.sig == SIGTERM,
	      "2: SIGTERM ends the loop while the console's reader is stalled");
	if (g.done)
		pthread_join(gt, NULL);
	else
		bail("2: vCPU thread");
	CHECK(console_dropped(out) >= 2 * CONSOLE_QUEUE, "2: output beyond the queue dropped (%llu)",
	      (unsigned long long)console_dropped(out));
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	teardown();
	clock_gettime(CLOCK_MONOTONIC, &b);
	long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	CHECK(ms < 1500, "2: teardown gives up on the stalled reader in bounded time (%ld ms)", ms);
	sleep_ms(100); /* the note's own thread */
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	char text[4096] = "";
	rewind(errf);
	size_t n = fread(text, 1, sizeof(text) - 1, errf);
	text[n] = 0;
	fclose(errf);
	int stalls = 0;
	for (const char *p = text; (p = strstr(p, "not being read")); p++)
		stalls++;
	CHECK_EQ(stalls, 1, "2: the stall is said once on stderr");
	CHECK(strstr(text, "bytes of guest output dropped") != NULL, "2: and the count at the end");
	close(out_r);
	close(out_w);
}

static void test_main_flush_full_pipe(void)
{
	struct loop_run r;
	pthread_t th;

	full_pipe();
	setup(out_w);
	/* a prompt without a newline, waiting for the stalled reader */
	wr(0, '$');
	wr(0, ' ');
	if (start(&r, &th))
		bail("pthread_create");
	sleep_ms(100);
	kill(getpid(), SIGTERM);
	if (finish(&r, th, BOUND_MS))
		bail("3: pending output for a full pipe does not block the loop");
	CHECK(r.ev == EXIT_EV_NONE && r.sig == SIGTERM,
	      "3: pending output for a full pipe does not block the loop (SIGTERM obeyed)");
	teardown();
	close(out_r);
	close(out_w);
}

static void test_panic_and_eof(void)
{
	struct loop_run r;
	pthread_t th;
	int p[2];

	if (pipe2(p, O_CLOEXEC))
		bail("pipe");
	setup(p[1]);
	close(in_w);
	in_w = open("/dev/null", O_WRONLY | O_CLOEXEC); /* stdin at EOF: keep running */
	exit_raise(&x, EXIT_EV_PANIC);
	if (start(&r, &th))
		bail("pthread_create");
	const char *msg = "---[ end Kernel panic - not syncing: test ]---\n";
	sleep_ms(100);
	CHECK(!r.done, "panic: the loop waits for the end of the report");
	for (const char *c = msg; *c; c++)
		wr(0, (uint8_t)*c);
	if (finish(&r, th, BOUND_MS))
		bail("panic: loop ends at the report's end");
	CHECK_EQ(r.ev, EXIT_EV_PANIC, "panic: the loop ends with the panic at the report's end");
	teardown();
	char buf[128];
	ssize_t n = read(p[0], buf, sizeof(buf));
	CHECK(n == (ssize_t)strlen(msg), "panic: the report's end reached the console (%zd)", n);
	close(p[0]);
	close(p[1]);
}

/* A hook the loop calls and then goes on: the power button (SIGPWR,
 * Ctrl-A p) or the device report (SIGUSR2, Ctrl-A s). */
struct hook_case {
	const char *sig, *key;   /* for the check names */
	int signo;
	char ch;
	bool report;             /* which runloop_cfg hook */
	int fail_rc;             /* a call that fails ... */
	const char *said_ok;     /* ... and what the console says (ok: NULL for nothing) */
	const char *said_fail;
};

static int calls, call_rc;
static int fake_hook(void *opaque)
{
	(void)opaque;
	calls++;
	return call_rc;
}

/* The signal and the key call the hook once each and the loop goes on,
 * also when the call fails (said on the console); the guest decides what
 * happens next. Without the hook, the signal ends the loop as any other. */
static void test_hook(const struct hook_case *k)
{
	struct loop_run r;
	pthread_t th;
	int p[2];
	char keys[2] = { 0x01, k->ch };

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK))
		bail("pipe");
	setup(p[1]);
	calls = 0;
	call_rc = 0;
	if (k->report)
		start_report = fake_hook;
	else
		start_button = fake_hook;
	if (start(&r, &th))
		bail("pthread_create");
	start_button = NULL;
	start_report = NULL;
	sleep_ms(50);
	kill(getpid(), k->signo);
	sleep_ms(100);
	CHECK(calls == 1 && !r.done, "%s: called once, the loop goes on (%d)", k->sig, calls);
	CHECK((size_t)write(in_w, keys, 2) == 2, "%s typed", k->key);
	sleep_ms(100);
	CHECK(calls == 2 && !r.done, "%s: called again, the loop goes on (%d)", k->key, calls);
	call_rc = k->fail_rc;
	kill(getpid(), k->signo);
	sleep_ms(100);
	CHECK(calls == 3 && !r.done, "%s: a call that fails: said, the loop goes on", k->sig);
	exit_raise(&x, EXIT_EV_POWEROFF);
	if (finish(&r, th, BOUND_MS))
		bail("hook: the guest's poweroff ends the loop");
	CHECK_EQ(r.ev, EXIT_EV_POWEROFF, "the guest's poweroff after the calls ends the loop, status poweroff");
	teardown();
	char buf[512] = "";
	ssize_t n = read(p[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	CHECK((!k->said_ok || strstr(buf, k->said_ok)) && strstr(buf, k->said_fail),
	      "%s: the console says '%s'", k->sig, k->said_fail);
	close(p[0]);
	close(p[1]);

	setup(-1);
	if (start(&r, &th))
		bail("pthread_create");
	sleep_ms(50);
	kill(getpid(), k->signo);
	if (finish(&r, th, BOUND_MS))
		bail("hook: the signal without its hook ends the loop");
	CHECK(r.ev == EXIT_EV_NONE && r.sig == k->signo, "no hook: %s ends the loop like other signals", k->sig);
	teardown();
}

static void test_power_button(void)
{
	static const struct hook_case k = {
		"SIGPWR", "Ctrl-A p", SIGPWR, 'p', false, -EIO,
		"power button pressed", "could not be pressed",
	};
	test_hook(&k);
}

static void test_report(void)
{
	static const struct hook_case k = {
		"SIGUSR2", "Ctrl-A s", SIGUSR2, 's', true, -EBUSY, NULL, "still being written",
	};
	test_hook(&k);
}

/* The tick: about once per RUNLOOP_TICK_MS while nothing else happens,
 * and typed input does not hold it back; what it raises ends the loop
 * (the halt watch raises EXIT_EV_HALT this way). */
static int ticks, tick_raise_at;
static void fake_tick(void *opaque)
{
	(void)opaque;
	if (++ticks == tick_raise_at)
		exit_raise(&x, EXIT_EV_HALT);
}

static void test_tick(void)
{
	struct loop_run r;
	pthread_t th;

	setup(-1);
	ticks = 0;
	tick_raise_at = 3;
	start_tick = fake_tick;
	if (start(&r, &th))
		bail("pthread_create");
	start_tick = NULL;
	sleep_ms(RUNLOOP_TICK_MS + RUNLOOP_TICK_MS / 2);
	CHECK(ticks == 1 && !r.done, "one tick after %d ms (%d)", RUNLOOP_TICK_MS * 3 / 2, ticks);
	/* keys keep the loop busy; the tick still comes */
	for (int i = 0; i < 10; i++) {
		if (write(in_w, "k", 1) != 1)
			bail("write");
		sleep_ms(RUNLOOP_TICK_MS / 10);
	}
	CHECK(ticks == 2 && !r.done, "typing does not hold the tick back (%d)", ticks);
	if (finish(&r, th, RUNLOOP_TICK_MS + BOUND_MS))
		bail("tick: what the tick raises ends the loop");
	CHECK_EQ(r.ev, EXIT_EV_HALT, "the third tick raised EXIT_EV_HALT: the loop ends with it");
	CHECK_EQ(ticks, 3, "no tick after that");
	teardown();
}

/* argv[1], if given, picks one test by name (rx, held, vcpu, flush, panic, power, report, tick) */
int main(int argc, char **argv)
{
	static const struct { const char *name; void (*fn)(void); } tests[] = {
		{ "rx", test_rx_full_escape },
		{ "held", test_held_input },
		{ "vcpu", test_vcpu_full_pipe },
		{ "flush", test_main_flush_full_pipe },
		{ "panic", test_panic_and_eof },
		{ "power", test_power_button },
		{ "report", test_report },
		{ "tick", test_tick },
	};
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGPWR);
	sigaddset(&ss, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &ss, NULL); /* every thread inherits it */
	sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		bail("signalfd");
	signal(SIGPIPE, SIG_IGN);

	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (argc < 2 || !strcmp(argv[1], tests[i].name))
			tests[i].fn();
	close(sfd);
	return t_done();
}
