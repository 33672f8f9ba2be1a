# kernel/: what lazypages assumes about userfaultfd, checked two ways.
#   kernel/models/*.pml   Promela models of the kernel's wakeup races and the daemon's
#                         obligations; `make models` (or the `models` test) runs them with spin
#   lazypages check       probes the running kernel; it reads capabilities through libcap

LP_LDLIBS += -lcap

.PHONY: models
models:
	kernel/run-models.sh
