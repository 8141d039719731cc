#include "io/svg_plot.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fsutil.h"

#define DEFAULT_W  720
#define DEFAULT_H  420
#define MIN_W      240
#define MIN_H      180
#define TICKS      5     /* about this many tick steps per axis */
#define MARKER_R   3.5
#define LEGEND_ROW 18

/* Tableau 10: distinct for most colour-blind readers, fine in print. */
static const char *const palette[10] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                        "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

void srlm_plot_default_options(srlm_plot_options *o) {
    memset(o, 0, sizeof *o);
    o->width = DEFAULT_W;
    o->height = DEFAULT_H;
}

/* ---- a growing text buffer; an allocation failure sticks and is reported once ---- */

typedef struct {
    char  *p;
    size_t n, cap;
    int    oom;
} sbuf;

static void sb_reserve(sbuf *b, size_t more) {
    if (b->oom || b->n + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + more + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void sb_add(sbuf *b, const char *s, size_t n) {
    sb_reserve(b, n);
    if (b->oom) return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (k < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)k < sizeof small) {
        sb_add(b, small, (size_t)k);
        return;
    }
    sb_reserve(b, (size_t)k);
    if (b->oom) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* Length of the valid UTF-8 sequence at s (1..4), 0 when it is not one. Overlong
 * forms and surrogates are refused, as an XML parser would. */
static int utf8_len(const unsigned char *s) {
    unsigned c = s[0];
    int n;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) n = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) n = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, min = 0x10000;
    else return 0;
    unsigned cp = c & (0x7fu >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0; /* also stops at the NUL */
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

/* Text content or attribute value: XML-escaped, never ill-formed. */
static void sb_text(sbuf *b, const char *s) {
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        switch (*u) {
        case '&': sb_add(b, "&amp;", 5); u++; continue;
        case '<': sb_add(b, "&lt;", 4); u++; continue;
        case '>': sb_add(b, "&gt;", 4); u++; continue;
        case '"': sb_add(b, "&quot;", 6); u++; continue;
        case '\'': sb_add(b, "&apos;", 6); u++; continue;
        default: break;
        }
        int n = utf8_len(u);
        if (n == 0 || (*u < 0x20) || *u == 0x7f) { /* XML 1.0 forbids most controls */
            sb_add(b, "?", 1);
            u++;
        } else {
            sb_add(b, (const char *)u, (size_t)n);
            u += n;
        }
    }
}

/* Code points, for the legend's width estimate. */
static int text_width(const char *s) {
    int n = 0;
    for (const unsigned char *u = (const unsigned char *)s; *u; u++) n += (*u & 0xc0) != 0x80;
    return n;
}

/* A pixel coordinate, 2 decimals. Clamped far outside the image (the clip path
 * hides it) so a wild value cannot print hundreds of digits; never "-0.00". */
static const char *px(char *buf, double v) {
    if (v > 1e6) v = 1e6;
    if (v < -1e6) v = -1e6;
    v = round(v * 100.0) / 100.0;
    if (v == 0) v = 0; /* -0 -> 0 */
    snprintf(buf, 32, "%.2f", v);
    return buf;
}

/* ---- axes ---- */

typedef struct {
    double lo, hi;   /* the axis spans lo..hi */
    double step;     /* tick spacing */
    long   k0, k1;   /* ticks at k * step, k0 <= k <= k1 */
} axis;

/* 1, 2 or 5 times a power of ten, about span / TICKS. */
static double nice_step(double span, int integer) {
    double raw = span / TICKS;
    double p = pow(10.0, floor(log10(raw)));
    double f = raw / p;
    double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
    return integer && step < 1 ? 1 : step;
}

/* lo..hi from data (have = 0: no points); fixed: keep lo..hi as given. */
static void make_axis(axis *a, double lo, double hi, int have, int fixed, int integer) {
    if (!fixed) {
        if (!have) {
            lo = 0;
            hi = 1;
        } else if (lo == hi) {
            double pad = fmax(integer ? 1.0 : 0.5, fabs(lo) * 0.1);
            lo -= pad;
            hi += pad;
        }
    }
    a->step = nice_step(hi - lo, integer);
    /* The 1e-9 slack keeps 0.30000000000000004 / 0.1 from adding a tick. */
    if (fixed) {
        a->k0 = (long)ceil(lo / a->step - 1e-9);
        a->k1 = (long)floor(hi / a->step + 1e-9);
        a->lo = lo;
        a->hi = hi;
    } else {
        a->k0 = (long)floor(lo / a->step + 1e-9);
        a->k1 = (long)ceil(hi / a->step - 1e-9);
        a->lo = (double)a->k0 * a->step;
        a->hi = (double)a->k1 * a->step;
    }
}

static srlm_status check_input(const srlm_plot_options *o, const srlm_plot_series *s, int n_series) {
    if (o->width < MIN_W || o->height < MIN_H)
        return SRLM_ERR(SRLM_BAD_INPUT, "plot size %dx%d is below the minimum %dx%d", o->width, o->height, MIN_W,
                        MIN_H);
    if (o->y_fixed && !(isfinite(o->y_min) && isfinite(o->y_max) && o->y_min < o->y_max &&
                        isfinite(o->y_max - o->y_min)))
        return SRLM_ERR(SRLM_BAD_INPUT, "fixed y range %g..%g is not finite with min < max", o->y_min, o->y_max);
    if (n_series < 0) return SRLM_ERR(SRLM_BAD_INPUT, "negative series count %d", n_series);
    if (n_series > 0 && !s) return SRLM_ERR(SRLM_BAD_INPUT, "no series given for a count of %d", n_series);
    for (int i = 0; i < n_series; i++) {
        if (!s[i].name) return SRLM_ERR(SRLM_BAD_INPUT, "series %d has no name", i);
        if (s[i].n < 0) return SRLM_ERR(SRLM_BAD_INPUT, "series %d (%s): negative point count", i, s[i].name);
        if (s[i].n > 0 && (!s[i].x || !s[i].y))
            return SRLM_ERR(SRLM_BAD_INPUT, "series %d (%s): missing x or y values", i, s[i].name);
        for (int k = 0; k < s[i].n; k++) {
            if (!isfinite(s[i].x[k]))
                return SRLM_ERR(SRLM_BAD_INPUT, "series %d (%s), point %d: x is not finite", i, s[i].name, k);
            if (isinf(s[i].y[k]))
                return SRLM_ERR(SRLM_BAD_INPUT, "series %d (%s), point %d: y is infinite", i, s[i].name, k);
        }
    }
    return SRLM_OK;
}

srlm_status srlm_svg_plot_render(const srlm_plot_options *opts, const srlm_plot_series *s, int n_series,
                                 char **out, size_t *len) {
    *out = NULL;
    if (len) *len = 0;
    srlm_plot_options o;
    if (opts) o = *opts;
    else srlm_plot_default_options(&o);
    if (o.width == 0) o.width = DEFAULT_W;
    if (o.height == 0) o.height = DEFAULT_H;
    SRLM_CHECK(check_input(&o, s, n_series));

    /* Data ranges over the points that are drawn. */
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    int have = 0, name_w = 0;
    for (int i = 0; i < n_series; i++) {
        int w = text_width(s[i].name);
        if (w > name_w) name_w = w;
        for (int k = 0; k < s[i].n; k++) {
            if (isnan(s[i].y[k])) continue;
            have = 1;
            xlo = fmin(xlo, s[i].x[k]);
            xhi = fmax(xhi, s[i].x[k]);
            ylo = fmin(ylo, s[i].y[k]);
            yhi = fmax(yhi, s[i].y[k]);
        }
    }
    if (have && !(isfinite(xhi - xlo) && isfinite(yhi - ylo)))
        return SRLM_ERR(SRLM_BAD_INPUT, "plot values span more than a double can hold");
    axis ax, ay;
    make_axis(&ax, xlo, xhi, have, 0, o.x_integer);
    if (o.y_fixed) make_axis(&ay, o.y_min, o.y_max, 1, 1, 0);
    else make_axis(&ay, ylo, yhi, have, 0, 0);

    /* Layout: title on top, tick labels and x label below, y label left, the
     * legend in a column right of the plot (about 7 px per character). */
    double top = o.title ? 44 : 20;
    double bottom = o.x_label ? 58 : 36;
    double left = o.y_label ? 78 : 58;
    double legend_w = n_series > 0 ? fmin(40.0 + 7.0 * name_w, 260.0) : 0;
    double pw = o.width - left - (20 + legend_w);
    if (pw < 100) pw = 100; /* a long legend on a small plot runs off the edge */
    double ph = o.height - top - bottom;
    char b1[32], b2[32], b3[32], b4[32];
#define X(v) (left + ((v) - ax.lo) / (ax.hi - ax.lo) * pw)
#define Y(v) (top + ph - ((v) - ay.lo) / (ay.hi - ay.lo) * ph)

    sbuf b = {0};
    sb_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    sb_printf(&b,
              "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
              "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
              o.width, o.height, o.width, o.height);
    /* The clip area is one marker radius larger, so markers on the edge stay whole. */
    sb_printf(&b, "<defs><clipPath id=\"plot-area\"><rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\"/>"
                  "</clipPath></defs>\n",
              px(b1, left - MARKER_R - 1), px(b2, top - MARKER_R - 1), px(b3, pw + 2 * MARKER_R + 2),
              px(b4, ph + 2 * MARKER_R + 2));
    sb_printf(&b, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    if (o.title) {
        sb_printf(&b, "<text x=\"%s\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">",
                  px(b1, o.width / 2.0));
        sb_text(&b, o.title);
        sb_printf(&b, "</text>\n");
    }

    /* Grid, ticks and tick labels. */
    sb_printf(&b, "<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n");
    for (long k = ay.k0; k <= ay.k1; k++)
        sb_printf(&b, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\"/>\n", px(b1, left),
                  px(b2, Y(k * ay.step)), px(b3, left + pw), px(b4, Y(k * ay.step)));
    for (long k = ax.k0; k <= ax.k1; k++)
        sb_printf(&b, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\"/>\n", px(b1, X(k * ax.step)), px(b2, top),
                  px(b3, X(k * ax.step)), px(b4, top + ph));
    sb_printf(&b, "</g>\n");
    sb_printf(&b, "<g fill=\"#333333\">\n");
    for (long k = ay.k0; k <= ay.k1; k++)
        sb_printf(&b, "<text x=\"%s\" y=\"%s\" text-anchor=\"end\">%.4g</text>\n", px(b1, left - 8),
                  px(b2, Y(k * ay.step) + 4), (double)k * ay.step);
    for (long k = ax.k0; k <= ax.k1; k++)
        sb_printf(&b, "<text x=\"%s\" y=\"%s\" text-anchor=\"middle\">%.4g</text>\n", px(b1, X(k * ax.step)),
                  px(b2, top + ph + 18), (double)k * ax.step);
    sb_printf(&b, "</g>\n");
    sb_printf(&b, "<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"none\" stroke=\"#333333\"/>\n",
              px(b1, left), px(b2, top), px(b3, pw), px(b4, ph));
    if (o.x_label) {
        sb_printf(&b, "<text x=\"%s\" y=\"%s\" text-anchor=\"middle\">", px(b1, left + pw / 2),
                  px(b2, (double)o.height - 14));
        sb_text(&b, o.x_label);
        sb_printf(&b, "</text>\n");
    }
    if (o.y_label) {
        sb_printf(&b, "<text x=\"20\" y=\"%s\" text-anchor=\"middle\" transform=\"rotate(-90 20 %s)\">",
                  px(b1, top + ph / 2), px(b2, top + ph / 2));
        sb_text(&b, o.y_label);
        sb_printf(&b, "</text>\n");
    }

    /* Series: one group each, titled with the name (a tooltip in viewers); the
     * line is one path that breaks at missing points. */
    for (int i = 0; i < n_series; i++) {
        const char *colour = palette[i % 10];
        const char *dash = i >= 10 ? " stroke-dasharray=\"6 3\"" : "";
        sb_printf(&b, "<g clip-path=\"url(#plot-area)\"><title>");
        sb_text(&b, s[i].name);
        sb_printf(&b, "</title>\n");
        int any = 0, pen_down = 0;
        for (int k = 0; k < s[i].n; k++) {
            if (isnan(s[i].y[k])) {
                pen_down = 0;
                continue;
            }
            if (!any) sb_printf(&b, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s d=\"", colour, dash);
            sb_printf(&b, "%s%s %s", any ? " " : "", pen_down ? "L" : "M", px(b1, X(s[i].x[k])));
            sb_printf(&b, " %s", px(b1, Y(s[i].y[k])));
            any = pen_down = 1;
        }
        if (any) sb_printf(&b, "\"/>\n");
        sb_printf(&b, "<g fill=\"%s\">", colour);
        for (int k = 0; k < s[i].n; k++)
            if (!isnan(s[i].y[k]))
                sb_printf(&b, "<circle cx=\"%s\" cy=\"%s\" r=\"%.1f\"/>", px(b1, X(s[i].x[k])),
                          px(b2, Y(s[i].y[k])), MARKER_R);
        sb_printf(&b, "</g></g>\n");
    }

    /* Legend: a line sample with its marker, then the name. */
    for (int i = 0; i < n_series; i++) {
        double lx = left + pw + 16, ly = top + 8 + i * LEGEND_ROW;
        const char *colour = palette[i % 10];
        sb_printf(&b, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"%s\" stroke-width=\"2\"%s/>",
                  px(b1, lx), px(b2, ly), px(b3, lx + 22), px(b4, ly), colour,
                  i >= 10 ? " stroke-dasharray=\"6 3\"" : "");
        sb_printf(&b, "<circle cx=\"%s\" cy=\"%s\" r=\"%.1f\" fill=\"%s\"/>", px(b1, lx + 11), px(b2, ly),
                  MARKER_R, colour);
        sb_printf(&b, "<text x=\"%s\" y=\"%s\">", px(b1, lx + 28), px(b2, ly + 4));
        sb_text(&b, s[i].name);
        sb_printf(&b, "</text>\n");
    }
    sb_printf(&b, "</svg>\n");
#undef X
#undef Y

    if (b.oom) {
        free(b.p);
        return SRLM_ERR(SRLM_FAILED, "out of memory rendering a plot");
    }
    *out = b.p;
    if (len) *len = b.n;
    return SRLM_OK;
}

srlm_status srlm_svg_plot_write(const char *path, const srlm_plot_options *o, const srlm_plot_series *s,
                                int n_series) {
    char *svg;
    size_t n;
    srlm_status st = srlm_svg_plot_render(o, s, n_series, &svg, &n);
    if (st != SRLM_OK) {
        srlm_error_context("plot %s", path);
        return st;
    }
    st = srlm_write_file_atomic(path, svg, n);
    free(svg);
    return st;
}
