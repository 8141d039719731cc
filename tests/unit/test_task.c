/* The demo task: the lexicon is deterministic and unique, every task has an
 * answer, instructions parse back, and the rubric scores a table of responses
 * exactly; judgements end with a "Score: N" that equals the rubric. */
#include <stdio.h>
#include <string.h>

#include "demo/task.h"
#include "test.h"

int main(void) {
    srlm_lexicon a, b;
    CHECK_OK(srlm_lexicon_make(&a, 600, 7));
    CHECK_OK(srlm_lexicon_make(&b, 600, 7));
    CHECK(a.n_words == 600 && !memcmp(a.words, b.words, sizeof *a.words * 600));
    srlm_lexicon_free(&b);
    CHECK_OK(srlm_lexicon_make(&b, 600, 8));
    CHECK_MSG(memcmp(a.words, b.words, sizeof *a.words * 600) != 0, "another seed gave the same lexicon");
    srlm_lexicon_free(&b);
    for (int i = 1; i < a.n_words; i++) CHECK(strcmp(a.words[i - 1], a.words[i]) < 0);
    int pairs = 0;
    for (int f = 0; f < 26; f++) for (int l = 0; l < 26; l++) pairs += a.count[f][l] > 0;
    printf("lexicon: %d words, e.g. %s %s %s; %d (first, last) letter pairs\n", a.n_words, a.words[0],
           a.words[300], a.words[599], pairs);

    for (uint64_t i = 0; i < 2000; i++) {
        srlm_task t = srlm_task_make(&a, 3, i), back;
        const char *ans = srlm_task_answer(&a, &t, i);
        CHECK(ans != NULL);
        if (ans) CHECK(srlm_task_score(&a, &t, ans, NULL) == 5);
        char text[128];
        srlm_task_instruction(&t, text, sizeof text);
        CHECK(srlm_task_parse(text, &back) && back.first == t.first && back.last == t.last);
    }
    srlm_task t;
    const char *right = srlm_task_answer(&a, &(srlm_task){a.words[0][0], a.words[0][strlen(a.words[0]) - 1]}, 0);
    CHECK(right != NULL);
    srlm_task tr = {right[0], right[strlen(right) - 1]};
    char buf[256];
    CHECK(srlm_task_score(&a, &tr, right, NULL) == 5);
    CHECK(srlm_task_score(&a, &tr, "", NULL) == 0);
    snprintf(buf, sizeof buf, "%s is my answer", right);
    CHECK(srlm_task_score(&a, &tr, buf, NULL) == 4); /* all but "nothing else" */
    snprintf(buf, sizeof buf, "  %s \n", right);
    CHECK(srlm_task_score(&a, &tr, buf, NULL) == 5); /* surrounding space is not "something else" */
    snprintf(buf, sizeof buf, "%s.", right);
    CHECK(srlm_task_score(&a, &tr, buf, NULL) == 1 + (buf[0] == tr.first)); /* "x." is not letters; first letter still counts */
    snprintf(buf, sizeof buf, "%sa", right);
    unsigned c;
    int s = srlm_task_score(&a, &tr, buf, &c);
    CHECK((c & 1u) && (c & 4u) && (c & 16u)); /* a word, right start, nothing else */
    CHECK(s == 3 + (int)((c >> 1) & 1u) + (int)((c >> 3) & 1u));
    /* judgements: the last line is the rubric score */
    const char *resp[] = {right, "", "hello world", "zzzz", "a"};
    for (size_t i = 0; i < sizeof resp / sizeof resp[0]; i++) {
        char j[512];
        srlm_task_judgement(&a, &tr, resp[i], j, sizeof j);
        int want = srlm_task_score(&a, &tr, resp[i], NULL), got = -1;
        const char *at = strstr(j, "\nScore: ");
        CHECK_MSG(at && sscanf(at, "\nScore: %d", &got) == 1 && got == want, "judgement '%s' for '%s'", j, resp[i]);
        /* the running tally on the "nothing else" line is the score too */
        const char *ne = strstr(j, "\nnothing else: ");
        int tally = -1;
        CHECK_MSG(ne && sscanf(ne, "\nnothing else: %*s %d", &tally) == 1 && tally == want, "tally in '%s'", j);
    }
    /* the judgement restates what it checks, and recalls the list words with
     * the answer's first and last letters before the membership decision */
    {
        char j[512], want[512], recall[256] = "";
        char f = right[0], l = right[strlen(right) - 1];
        for (int i = 0; i < a.n_words; i++) {
            const char *w = a.words[i];
            if (w[0] == f && w[strlen(w) - 1] == l) { strcat(recall, " "); strcat(recall, w); }
        }
        CHECK(strstr(recall, right) != NULL);
        srlm_task_judgement(&a, &tr, right, j, sizeof j);
        snprintf(want, sizeof want,
                 "Answer: %s\nletters only: yes 1\nrecall: List the words that start with '%c' and end with '%c'.%s\n"
                 "in the list: yes 2\nstarts with '%c': %c, yes 3\nends with '%c': %c, yes 4\nnothing else: yes 5\n"
                 "Score: 5",
                 right, f, l, recall, tr.first, f, tr.last, l);
        CHECK_MSG(!strcmp(j, want), "judgement of a right answer:\n%s\nexpected:\n%s", j, want);
        srlm_task_judgement(&a, &tr, "", j, sizeof j);
        snprintf(want, sizeof want,
                 "Answer: -\nletters only: no 0\nrecall: List the words that start with '-' and end with '-'. -\n"
                 "in the list: no 0\nstarts with '%c': -, no 0\nends with '%c': -, no 0\nnothing else: no 0\n"
                 "Score: 0", tr.first, tr.last);
        CHECK_MSG(!strcmp(j, want), "judgement of an empty answer:\n%s", j);
    }
    CHECK(!srlm_task_parse("Name a word from the word list that starts with 'K' and ends with 'o'.", &t));
    CHECK(!srlm_task_parse("Name a word that starts with 'k'.", &t));
    CHECK(!srlm_task_parse("Name a word from the word list that starts with 'k' and ends with 'o'. Now!", &t));
    srlm_lexicon bad;
    CHECK(srlm_lexicon_make(&bad, 0, 1) == SRLM_BAD_INPUT);
    srlm_lexicon_free(&a);
    TEST_DONE();
}
