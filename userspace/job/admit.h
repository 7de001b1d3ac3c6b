/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* admit.h - the admission step of `kgate run` (see admit.c). */
#ifndef KGATE_ADMIT_H
#define KGATE_ADMIT_H

#include <signal.h>
#include "policy/admission.h"
#include "record/audit.h"
#include "job/job.h"
#include "policy/policy.h"

struct kg_approvals;

struct kg_admit {
	const struct kg_policy_doc *doc;
	const struct kg_job_spec *spec;
	struct kg_audit *audit;
	const char *trace;
	volatile sig_atomic_t *interrupted;	/* stop waiting for approval when set */
	struct kg_approvals *approvals;		/* opened when needed; caller closes */
};

/* 0 when the launch may proceed (res says with which constraints), or the
 * KG_EXIT_* code `kgate run` exits with. */
int kg_admit(struct kg_admit *a, struct kg_admission_result *res);

/* Is the actor among the policy's launchers (empty = anyone)? */
bool kg_may_launch(const struct kg_principals *p, const struct kg_actor *a);

#endif
