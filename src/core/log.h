/* Logging to stderr with a level and (under MPI) the rank. Data goes to stdout;
 * everything a human reads goes here. */
#ifndef SRLM_LOG_H
#define SRLM_LOG_H

typedef enum { SRLM_LOG_DEBUG, SRLM_LOG_INFO, SRLM_LOG_WARN, SRLM_LOG_ERROR } srlm_log_level;

void srlm_log_set_level(srlm_log_level level);
void srlm_log_set_rank(int rank); /* -1: single process, no prefix */
void srlm_log(srlm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define SRLM_INFO(...)  srlm_log(SRLM_LOG_INFO, __VA_ARGS__)
#define SRLM_WARN(...)  srlm_log(SRLM_LOG_WARN, __VA_ARGS__)
#define SRLM_DEBUG(...) srlm_log(SRLM_LOG_DEBUG, __VA_ARGS__)

#endif
