# Benchmarks are run by hand or by bench/run, never by `make test`.
bench: all
	bench/run
.PHONY: bench
