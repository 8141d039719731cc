/* SVG line plot (src/io/svg_plot.c): the output is well-formed XML (checked by a
 * small scanner below: balanced tags, quoted attributes, only known entities, no
 * raw '<' or '&' in text, valid UTF-8 without control characters), names are
 * escaped, every series with points has a path and a legend entry, NAN points are
 * skipped and break the line, fixed and automatic y ticks, distinct colours,
 * byte-identical output for the same input, atomic write and the error for a
 * missing folder, bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fsutil.h"
#include "io/svg_plot.h"
#include "test.h"

/* ---- a minimal well-formedness check ---- */

static int entity_ok(const char *p) {
    static const char *const known[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strncmp(p, known[i], strlen(known[i]))) return (int)strlen(known[i]);
    return 0;
}

static int name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == ':' || c == '.';
}

/* 1 when the bytes are valid UTF-8 with no control characters but \t \n \r. */
static int utf8_clean(const char *s) {
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        if (*u < 0x20 && *u != '\t' && *u != '\n' && *u != '\r') return 0;
        int n = *u < 0x80 ? 1 : (*u & 0xe0) == 0xc0 ? 2 : (*u & 0xf0) == 0xe0 ? 3 : (*u & 0xf8) == 0xf0 ? 4 : 0;
        if (!n || (n == 2 && *u < 0xc2)) return 0;
        for (int i = 1; i < n; i++)
            if ((u[i] & 0xc0) != 0x80) return 0;
        u += n;
    }
    return 1;
}

/* Returns NULL when well-formed, else a reason (static). */
static const char *xml_check(const char *s) {
    static char why[200];
    char stack[64][64];
    int depth = 0, roots = 0;
    const char *p = s;
    if (!utf8_clean(s)) return "not clean UTF-8";
    while (*p) {
        if (*p == '&') {
            int n = entity_ok(p);
            if (!n) {
                snprintf(why, sizeof why, "bad entity at offset %ld", (long)(p - s));
                return why;
            }
            p += n;
            continue;
        }
        if (*p != '<') {
            if (depth == 0 && *p != '\n' && *p != ' ') return "text outside the root element";
            p++;
            continue;
        }
        if (!strncmp(p, "<?", 2)) {
            const char *e = strstr(p, "?>");
            if (!e || p != s) return "bad or misplaced XML declaration";
            p = e + 2;
            continue;
        }
        if (!strncmp(p, "<!--", 4)) {
            const char *e = strstr(p, "-->");
            if (!e) return "unclosed comment";
            p = e + 3;
            continue;
        }
        int closing = p[1] == '/';
        p += closing ? 2 : 1;
        char name[64];
        int n = 0;
        while (name_char(*p) && n < 63) name[n++] = *p++;
        name[n] = '\0';
        if (n == 0) {
            snprintf(why, sizeof why, "raw '<' at offset %ld", (long)(p - s));
            return why;
        }
        if (closing) {
            if (*p != '>') return "junk in a closing tag";
            p++;
            if (depth == 0 || strcmp(stack[depth - 1], name)) {
                snprintf(why, sizeof why, "</%s> does not close <%s>", name, depth ? stack[depth - 1] : "");
                return why;
            }
            depth--;
            continue;
        }
        /* Attributes. */
        for (;;) {
            int ws = 0;
            while (*p == ' ' || *p == '\n' || *p == '\t') p++, ws = 1;
            if (*p == '>' || !strncmp(p, "/>", 2)) break;
            if (!ws || !name_char(*p)) {
                snprintf(why, sizeof why, "bad attribute in <%s> at offset %ld", name, (long)(p - s));
                return why;
            }
            while (name_char(*p)) p++;
            if (*p++ != '=') return "attribute without '='";
            char q = *p++;
            if (q != '"' && q != '\'') return "unquoted attribute";
            while (*p && *p != q) {
                if (*p == '<') return "'<' in an attribute";
                if (*p == '&') {
                    int k = entity_ok(p);
                    if (!k) return "bad entity in an attribute";
                    p += k;
                } else {
                    p++;
                }
            }
            if (*p++ != q) return "unterminated attribute";
        }
        if (*p == '>') {
            if (depth == 0) roots++;
            if (depth == 64) return "too deep";
            snprintf(stack[depth++], 64, "%s", name);
            p++;
        } else {
            if (depth == 0) roots++;
            p += 2;
        }
    }
    if (depth != 0) {
        snprintf(why, sizeof why, "<%s> not closed", stack[depth - 1]);
        return why;
    }
    return roots == 1 ? NULL : "not exactly one root element";
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* ---- tests ---- */

static void test_scanner_can_fail(void) {
    /* The checker itself: each of these must be refused. */
    const char *bad[] = {
        "<svg><g></svg>",         "<svg>a & b</svg>",   "<svg>a < b</svg>",       "<svg x=\"a<b\"/>",
        "<svg x=\"1\"><g></g>",   "<svg x=1/>",         "<svg/><svg/>",           "<svg>\x01</svg>",
        "<svg>\xff</svg>",        "<svg>&nbsp;</svg>",  "<svg a=\"&\"></svg>",    "<a></b>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK_MSG(xml_check(bad[i]) != NULL, "accepted %s", bad[i]);
    CHECK(xml_check("<?xml version=\"1.0\"?>\n<svg a=\"&amp;&lt;\"><g/>x &gt; y</svg>\n") == NULL);
}

static void test_render(void) {
    double x[] = {0, 1, 2, 3, 4};
    double ya[] = {0.1, 0.35, 0.5, 0.72, 0.9};
    double yb[] = {0.2, NAN, 0.4, 0.6, NAN};  /* missing in the middle and at the end */
    double yc[] = {NAN, NAN, NAN, NAN, NAN};  /* nothing to draw */
    double yd[] = {0.05, 0.1, 0.15, 0.2, 0.25};
    srlm_plot_series s[] = {
        {"accuracy & <judge>", x, ya, 5},
        {"M1 \"baseline\" 'x'", x, yb, 5},
        {"empty", x, yc, 5},
        {"plain", x, yd, 5},
    };
    srlm_plot_options o;
    srlm_plot_default_options(&o);
    o.title = "Demo: M1 < M2 & M3";
    o.x_label = "iteration";
    o.y_label = "share > half";
    o.y_fixed = 1;
    o.y_min = 0;
    o.y_max = 1;
    o.x_integer = 1;
    char *svg = NULL;
    size_t len = 0;
    CHECK_OK(srlm_svg_plot_render(&o, s, 4, &svg, &len));
    if (!svg) return;
    CHECK(len == strlen(svg));
    const char *why = xml_check(svg);
    CHECK_MSG(why == NULL, "not well-formed: %s", why);

    /* Escaped text, never raw. */
    CHECK(strstr(svg, "Demo: M1 &lt; M2 &amp; M3"));
    CHECK(strstr(svg, "share &gt; half"));
    CHECK(count(svg, "accuracy &amp; &lt;judge&gt;") == 2); /* series title + legend */
    CHECK(count(svg, "M1 &quot;baseline&quot; &apos;x&apos;") == 2);
    CHECK(count(svg, ">empty<") == 2 && count(svg, ">plain<") == 2);
    CHECK(!strstr(svg, "& <") && !strstr(svg, "<judge>"));

    /* A path per series with points (3 of 4), one group per series, a marker per
     * finite point (5 + 3 + 0 + 5) plus one per legend entry (4). */
    CHECK_MSG(count(svg, "<path ") == 3, "%d paths", count(svg, "<path "));
    CHECK(count(svg, "<title>") == 4);
    CHECK_MSG(count(svg, "<circle ") == 13 + 4, "%d circles", count(svg, "<circle "));
    CHECK(!strstr(svg, "nan") && !strstr(svg, "NaN") && !strstr(svg, "inf"));

    /* Series b breaks at its missing point: two "M" moves, one "L" (2 -> 3). */
    const char *pb = strstr(svg, "M1 &quot;baseline");
    const char *path_b = pb ? strstr(pb, "<path ") : NULL;
    if (path_b) {
        const char *d = strstr(path_b, " d=\"");
        const char *end = d ? strchr(d + 4, '"') : NULL;
        int m = 0, l = 0;
        for (const char *c = d; c && c < end; c++) m += *c == 'M', l += *c == 'L';
        CHECK_MSG(m == 2 && l == 1, "series b path has %d M and %d L", m, l);
    } else {
        CHECK(path_b != NULL);
    }

    /* Distinct colours: the stroke of each path differs. */
    char colours[3][16] = {{0}};
    const char *p = svg;
    for (int i = 0; i < 3 && (p = strstr(p, "<path ")); i++, p++) {
        const char *st = strstr(p, "stroke=\"");
        if (st) sscanf(st + 8, "%15[^\"]", colours[i]);
    }
    CHECK(colours[0][0] == '#' && colours[1][0] == '#' && colours[2][0] == '#');
    CHECK(strcmp(colours[0], colours[1]) && strcmp(colours[1], colours[2]) && strcmp(colours[0], colours[2]));

    /* Fixed y range 0..1: ticks 0, 0.2, ..., 1 and nothing beyond; x ticks 0..4 by 1. */
    const char *yt[] = {">0</text>", ">0.2</text>", ">0.4</text>", ">0.6</text>", ">0.8</text>", ">1</text>"};
    for (int i = 0; i < 6; i++) CHECK_MSG(strstr(svg, yt[i]), "no tick %s", yt[i]);
    CHECK(!strstr(svg, ">1.2</text>") && !strstr(svg, ">-0.2</text>") && !strstr(svg, ">0.5</text>"));
    CHECK(strstr(svg, ">4</text>") && !strstr(svg, ">5</text>") && !strstr(svg, ">2.5</text>"));

    /* Same input, same bytes. */
    char *again = NULL;
    size_t len2 = 0;
    CHECK_OK(srlm_svg_plot_render(&o, s, 4, &again, &len2));
    CHECK(again && len2 == len && memcmp(svg, again, len) == 0);
    free(again);

    /* Written atomically: the file holds exactly the rendered bytes, twice over. */
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/svg_plot", test_env("SRLM_TMP", "/tmp/srlm-test"));
    CHECK_OK(srlm_remove_tree(dir));
    CHECK_OK(srlm_mkdir_p(dir));
    snprintf(path, sizeof path, "%s/plot.svg", dir);
    for (int round = 0; round < 2; round++) {
        CHECK_OK(srlm_svg_plot_write(path, &o, s, 4));
        size_t flen = 0;
        char *f = test_read_file(path, &flen);
        CHECK_MSG(f && flen == len && memcmp(f, svg, len) == 0, "round %d: file differs from the render", round);
        free(f);
    }
    free(svg);

    /* A missing folder: an error that names the path, and no file. */
    char missing[700];
    snprintf(missing, sizeof missing, "%s/no-such-dir/plot.svg", dir);
    srlm_status st = srlm_svg_plot_write(missing, &o, s, 4);
    CHECK(st != SRLM_OK);
    CHECK_MSG(strstr(srlm_last_error(), missing) != NULL, "message '%s'", srlm_last_error());
    CHECK(!srlm_path_exists(missing));
}

static void test_automatic_range(void) {
    /* y 3..17 -> step 5 (14 / 5 = 2.8 -> 5), axis widened to 0..20. */
    double x[] = {0.5, 1.5, 2.5}, y[] = {3, 17, 9};
    srlm_plot_series s = {"auto", x, y, 3};
    char *svg = NULL;
    CHECK_OK(srlm_svg_plot_render(NULL, &s, 1, &svg, NULL));
    if (!svg) return;
    CHECK(xml_check(svg) == NULL);
    const char *want[] = {">0</text>", ">5</text>", ">10</text>", ">15</text>", ">20</text>"};
    for (int i = 0; i < 5; i++) CHECK_MSG(strstr(svg, want[i]), "no y tick %s", want[i]);
    CHECK(!strstr(svg, ">25</text>") && !strstr(svg, ">-5</text>"));
    /* x 0.5..2.5: step 0.5 (2 / 5 = 0.4 -> 0.5). */
    CHECK(strstr(svg, ">0.5</text>") && strstr(svg, ">2.5</text>") && !strstr(svg, ">3</text>"));
    free(svg);

    /* One point, no options: renders, a padded range around it. */
    double x1[] = {2}, y1[] = {0.8};
    srlm_plot_series one = {"one", x1, y1, 1};
    CHECK_OK(srlm_svg_plot_render(NULL, &one, 1, &svg, NULL));
    CHECK(svg && xml_check(svg) == NULL && count(svg, "<circle ") == 2);
    free(svg);

    /* No series at all: still a valid, empty plot. */
    CHECK_OK(srlm_svg_plot_render(NULL, NULL, 0, &svg, NULL));
    CHECK(svg && xml_check(svg) == NULL && count(svg, "<path ") == 0);
    free(svg);
}

static void test_odd_text_and_many_series(void) {
    /* Control characters and bytes that are not UTF-8 become '?'; real UTF-8 stays. */
    double x[] = {0, 1}, y[] = {1, 2};
    srlm_plot_series s[12];
    char names[12][16];
    for (int i = 0; i < 12; i++) {
        snprintf(names[i], sizeof names[i], "s%d", i);
        s[i] = (srlm_plot_series){names[i], x, y, 2};
    }
    s[0].name = "tab\there\x01 \xff\xfe bad";
    s[1].name = "caf\xc3\xa9 \xe2\x86\x92 ok";
    char *svg = NULL;
    CHECK_OK(srlm_svg_plot_render(NULL, s, 12, &svg, NULL));
    if (!svg) return;
    const char *why = xml_check(svg);
    CHECK_MSG(why == NULL, "not well-formed: %s", why);
    CHECK(strstr(svg, "tab?here? ?? bad"));
    CHECK(strstr(svg, "caf\xc3\xa9 \xe2\x86\x92 ok"));
    /* 12 series: 10 colours, then repeated with a dash (path + legend line each). */
    CHECK(count(svg, "<path ") == 12);
    CHECK_MSG(count(svg, "stroke-dasharray") == 4, "%d dashed", count(svg, "stroke-dasharray"));
    free(svg);
}

static void test_bad_input(void) {
    double x[] = {0, NAN}, y[] = {1, 2}, yinf[] = {1, INFINITY}, xok[] = {0, 1};
    srlm_plot_options o;
    srlm_plot_default_options(&o);
    char *svg = (char *)1;
    struct {
        const char      *what;
        srlm_plot_series s;
        const char      *needle;
    } t[] = {
        {"x NAN", {"bad-x", x, y, 2}, "point 1"},
        {"y infinite", {"bad-y", xok, yinf, 2}, "point 1"},
        {"no name", {NULL, xok, y, 2}, "series 1"},
        {"no arrays", {"noarr", NULL, NULL, 2}, "noarr"},
        {"negative count", {"neg", xok, y, -1}, "neg"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        srlm_plot_series s[2] = {{"fine", xok, y, 2}, t[i].s};
        srlm_status st = srlm_svg_plot_render(&o, s, 2, &svg, NULL);
        CHECK_MSG(st == SRLM_BAD_INPUT && svg == NULL, "%s: status %d", t[i].what, (int)st);
        CHECK_MSG(strstr(srlm_last_error(), t[i].needle), "%s: message '%s'", t[i].what, srlm_last_error());
    }
    srlm_plot_series fine = {"fine", xok, y, 2};
    o.y_fixed = 1;
    o.y_min = 1;
    o.y_max = 1;
    CHECK(srlm_svg_plot_render(&o, &fine, 1, &svg, NULL) == SRLM_BAD_INPUT);
    o.y_max = NAN;
    CHECK(srlm_svg_plot_render(&o, &fine, 1, &svg, NULL) == SRLM_BAD_INPUT);
    srlm_plot_default_options(&o);
    o.width = 50;
    CHECK(srlm_svg_plot_render(&o, &fine, 1, &svg, NULL) == SRLM_BAD_INPUT);
    /* Writing bad input names the file too. */
    srlm_plot_series bad = {"bad-x", x, y, 2};
    CHECK(srlm_svg_plot_write("/nonexistent/p.svg", NULL, &bad, 1) == SRLM_BAD_INPUT);
    CHECK(strstr(srlm_last_error(), "/nonexistent/p.svg") && strstr(srlm_last_error(), "bad-x"));
}

int main(void) {
    test_scanner_can_fail();
    test_render();
    test_automatic_range();
    test_odd_text_and_many_series();
    test_bad_input();
    TEST_DONE();
}
