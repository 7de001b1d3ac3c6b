// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* lsm_exit42 - the program the exec tests copy around and run: it exits 42,
 * so a test can tell "it ran" from "exec failed" (126/127) at a glance. */
int main(void)
{
	return 42;
}
