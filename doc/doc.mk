# Man pages: doc/*.scd through scdoc into $(BUILD)/man/, with the exit
# status table shared with the README (doc/exit-status.txt, one
# "CODE<tab>MEANING" line each) and the install paths filled in.
MAN_SRCS := doc/kvmlab-net.8.scd doc/kvmlab-vm.1.scd
MAN_PAGES := $(MAN_SRCS:doc/%.scd=$(BUILD)/man/%)
SCDOC ?= scdoc

$(BUILD)/man/exit-status.scd: doc/exit-status.txt
	@mkdir -p $(dir $@)
	awk -F'\t' '{ printf "*%s*\n\t%s\n\n", $$1, $$2 }' $< >$@

$(BUILD)/man/%: doc/%.scd $(BUILD)/man/exit-status.scd $(KL_STAMP)
	sed -e '/^@EXIT_STATUS@$$/{r $(BUILD)/man/exit-status.scd' -e 'd;}' \
		-e 's|@GUESTDIR@|$(GUESTDIR)|g' $< | $(SCDOC) >$@.tmp
	mv $@.tmp $@

man: $(MAN_PAGES)
.PHONY: man
