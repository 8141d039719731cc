/* A small SVG line plot (the demo's per-iteration plot, DESIGN.md "Demo"): title,
 * axis labels, numbered ticks, several named series with a legend, markers at
 * the points. No dependencies; the output is a standalone SVG 1.1 file.
 *
 * - A point with y = NAN is missing: no marker, and the line breaks there (the
 *   points on either side are not joined). x must be finite; y finite or NAN.
 *   A series whose points are all missing still gets its legend entry.
 * - Ranges: x always automatic; y fixed (y_fixed, e.g. 0..1 for accuracies) or
 *   automatic. Automatic ranges span the finite points, widened to whole tick
 *   steps (1, 2 or 5 times a power of ten, about 5 ticks); a single value v
 *   gets max(0.5, |v|/10) either side (at least 1 for whole-number x ticks); no
 *   points gives 0..1. Lines and markers outside a fixed range are clipped to
 *   the plot area.
 * - Colours: a fixed palette of 10 (Tableau 10) in series order; from the 11th
 *   series on, the colours repeat with a dashed line.
 * - Text (title, labels, series names) is XML-escaped; control characters and
 *   bytes that are not UTF-8 become '?', so the file is always well-formed XML.
 * - Deterministic: the same input gives byte-identical output (fixed number
 *   formats: coordinates %.2f, tick labels %.4g). */
#ifndef SRLM_SVG_PLOT_H
#define SRLM_SVG_PLOT_H

#include <stddef.h>

#include "core/status.h"

typedef struct {
    const char   *name; /* legend text */
    const double *x;    /* [n], finite */
    const double *y;    /* [n], finite or NAN (missing) */
    int           n;    /* >= 0 */
} srlm_plot_series;

typedef struct {
    const char *title;     /* NULL = none */
    const char *x_label;   /* NULL = none */
    const char *y_label;   /* NULL = none */
    int         y_fixed;   /* 1: the y axis spans y_min..y_max; 0: automatic */
    double      y_min, y_max;
    int         x_integer; /* 1: x ticks at whole numbers only (iterations) */
    int         width, height; /* pixels; 0 = default (720 x 420); at least 240 x 180 */
} srlm_plot_options;

/* Zeroed options with the defaults above (no labels, automatic ranges). */
void srlm_plot_default_options(srlm_plot_options *o);

/* The SVG text: *out is malloc'd and NUL-terminated (the caller frees it), *len
 * (may be NULL) its length. SRLM_BAD_INPUT naming the series and point for a NULL
 * name or array, a negative count, a non-finite x or an infinite y; or for a fixed
 * y range that is not finite with y_min < y_max, or a size below the minimum.
 * SRLM_FAILED when out of memory. */
srlm_status srlm_svg_plot_render(const srlm_plot_options *o, const srlm_plot_series *s, int n_series,
                                 char **out, size_t *len);

/* Render and write to `path` atomically (srlm_write_file_atomic). Errors name the
 * path. */
srlm_status srlm_svg_plot_write(const char *path, const srlm_plot_options *o, const srlm_plot_series *s,
                                int n_series);

#endif
