# Helpers shared by the shell tests (sourced, never run on its own).

# why LOG: the line of LOG that explains a failed command. Under the sanitizers a
# report ends with hints, so its first line (the error itself) is the one to show;
# otherwise the log's last line, where srlm writes its error message.
why() { grep -m1 -E 'Tracer caught|^==[0-9]+==ERROR|runtime error:' "$1" || tail -1 "$1"; }
