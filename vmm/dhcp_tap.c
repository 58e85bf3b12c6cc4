#include "dhcp_tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>

/* Classic BPF: IPv4, UDP, not a fragment, destination port 67. Every
 * other frame the guest sends stays out of this socket (and our CPU). */
static struct sock_filter dhcp_only[] = {
	BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),                 /* ethertype */
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 0, 8),
	BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 23),                 /* IP protocol */
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 6),
	BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 20),                 /* fragment offset */
	BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 4, 0),
	BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 14),                /* X = IP header length */
	BPF_STMT(BPF_LD | BPF_H | BPF_IND, 16),                 /* UDP destination port */
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 67, 0, 1),
	BPF_STMT(BPF_RET | BPF_K, DHCP_TAP_FRAME_MAX),
	BPF_STMT(BPF_RET | BPF_K, 0),
};

int dhcp_tap_open(struct dhcp_tap *t, int tap_fd, dhcp_tap_fn *fn, void *opaque,
		  struct err *e)
{
	struct ifreq ifr;
	struct sock_fprog prog = { .len = sizeof(dhcp_only) / sizeof(dhcp_only[0]),
				   .filter = dhcp_only };
	int one = 1, rc;

	t->fd = -1;
	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(tap_fd, TUNGETIFF, &ifr) < 0)
		return errf(e, errno, "dhcp: TUNGETIFF: %s", strerror(errno));
	t->ifindex = (int)if_nametoindex(ifr.ifr_name);
	if (!t->ifindex)
		return errf(e, errno, "dhcp: tap %s: %s", ifr.ifr_name, strerror(errno));
	/* protocol 0 until bound and filtered: nothing queues before that */
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return errf(e, errno, "dhcp: packet socket on %s: %s", ifr.ifr_name,
			    strerror(errno));
	/* ETH_P_ALL: a bridge port's frames are the bridge's before any
	 * per-protocol socket sees them; the filter keeps this one cheap */
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				   .sll_ifindex = t->ifindex };
	/* the guest's frames enter the host through the tap; ours leave
	 * through it: PACKET_IGNORE_OUTGOING keeps our replies out */
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) ||
	    setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sll, sizeof(sll))) {
		rc = errf(e, errno, "dhcp: packet socket on %s: %s", ifr.ifr_name,
			  strerror(errno));
		close(fd);
		return rc;
	}
	t->fd = fd;
	t->fn = fn;
	t->opaque = opaque;
	return 0;
}

void dhcp_tap_ready(void *opaque, uint32_t events)
{
	struct dhcp_tap *t = opaque;
	(void)events;
	for (;;) {
		ssize_t r = recv(t->fd, t->frame, sizeof(t->frame), MSG_TRUNC);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return; /* EAGAIN: all answered */
		}
		/* a frame the filter passed but longer than any DHCP request we
		 * parse: the guest's, and hostile until parsed; drop it whole */
		if ((size_t)r > sizeof(t->frame))
			continue;
		size_t rl = sizeof(t->reply);
		if (!t->fn(t->opaque, t->frame, (size_t)r, t->reply, &rl) || !rl ||
		    rl > sizeof(t->reply))
			continue;
		struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = t->ifindex,
					  .sll_halen = ETH_ALEN };
		memcpy(to.sll_addr, t->reply, ETH_ALEN);
		/* sent out of the tap, that is to the guest; a full queue loses
		 * it as a wire would, and the client asks again */
		(void)!sendto(t->fd, t->reply, rl, 0, (struct sockaddr *)&to, sizeof(to));
	}
}

void dhcp_tap_close(struct dhcp_tap *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}
