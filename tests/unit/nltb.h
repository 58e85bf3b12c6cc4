/* Netlink attributes of one level, by type, for tests that parse back a
 * message net/ built: mnl_attr_parse(nlh, hdrlen, tb_put, &tb). */
#ifndef KVMLAB_TESTS_NLTB_H
#define KVMLAB_TESTS_NLTB_H
#include <libmnl/libmnl.h>

#define TB_MAX 128 /* above every IFLA_, TCA_ and TCA_BPF_ type */
struct tb {
	const struct nlattr *a[TB_MAX + 1];
};

static inline int tb_put(const struct nlattr *a, void *data)
{
	struct tb *t = data;
	unsigned type = mnl_attr_get_type(a);

	if (type <= TB_MAX)
		t->a[type] = a;
	return MNL_CB_OK;
}
#endif
