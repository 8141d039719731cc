/* The report of `srlm plan`: one list of rows (section, key, value, formula)
 * built from an srlm_plan, printed as a table or as JSON, so the two always
 * carry the same numbers. */
#ifndef SRLM_PLAN_REPORT_H
#define SRLM_PLAN_REPORT_H

#include <stdio.h>

#include "core/status.h"
#include "pipeline/plan.h"

/* `title` names what was planned (config file, where the shapes came from). */
void        srlm_plan_print_table(const srlm_plan *p, const char *title, FILE *out);
srlm_status srlm_plan_print_json(const srlm_plan *p, const char *title, FILE *out);

#endif
