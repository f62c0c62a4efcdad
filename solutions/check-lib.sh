# solutions/check-lib.sh - sourced by every solutions/NN-name/EXERCISE/check.sh.
#
# A check.sh runs from its solution's directory (scripts/check-grades does `cd DIR && ./check.sh`)
# and proves what the exercise adds, with real processes and deadlines, never fixed sleeps. It
# prints one line per thing it saw and ends with a one-line summary; exit 0 means all was seen.
#
#   use_solution PROG...  the solution's programs, built like make grade-NN builds them: $SERVER...
#   ref_bin PROG          the chapter's reference PROG (make build-NN)
#   build_cpp SRC OUT [-I DIR]...   compile one program with the grader's flags
#   mutate FILE PERL      edit FILE in place with a perl -0 substitution; fail if nothing changed
#   grade_dir DIR         make grade-NN STUDENT=DIR; the report in $WORK/grade.txt
#   expect_fail TEST      the last grade report has "FAIL  TEST" (its reason line is printed)
#   graded_bin PROG       what the last grade_dir built
#   start NAME CMD...     run CMD in the background, stderr+stdout to $WORK/NAME.log
#   wait_log NAME REGEX [SECONDS]   until NAME.log matches (default: 10 s), else fail
#   wait_gone PID [SECONDS]         until PID has exited, else fail
#   kill9 PID             SIGKILL a process started here, and reap it
#   clean_exec CMD...     run CMD with descriptors 0-2 only (start NAME clean_exec CMD...)
#   ok TEXT / fail TEXT / skip TEXT  one line each; fail and skip end the check
set -u
SOL_DIR=$(pwd)
ROOT=$(cd "$SOL_DIR/../../.." && pwd)
CHAPTER=$(basename "$(dirname "$SOL_DIR")")
NUM=${CHAPTER%%-*}
NAME=$(basename "$SOL_DIR")
CXX=${CXX:-g++}
LIB=$ROOT/build/$(basename "$CXX")-release/libuds.a
WORK=$(mktemp -d "${TMPDIR:-/tmp}/uds-sol-$NUM-$NAME-XXXXXX")
chmod 0755 "$WORK"  # other users (uid 65534 in some checks) must reach what is in it
_pids=()

# Every process this check started, however deep: the descendants of this shell and of every
# process start() launched (recorded in a file, so that one started in a subshell, as in
# "x=$(f)" or "< <(f)", is known here too, even after that subshell is gone).
_descendants() {
    local tops="$$ ${_pids[*]} $(cat "$WORK/.pids" 2>/dev/null)"
    ps -e -o pid=,ppid= | awk -v tops="$tops" '
        { parent[$1] = $2 }
        END {
            n = split(tops, todo, " ")
            for (i = 1; i <= n; i++) {
                if (i > 1 && todo[i] in parent) print todo[i]
                for (p in parent)
                    if (parent[p] == todo[i]) { todo[++n] = p; print p }
            }
        }'
}

_cleanup() {
    local p all
    exec 2>/dev/null  # not bash's "Killed" notes about what we end here
    all=$(_descendants | sort -u)
    for p in $all; do kill -TERM "$p"; done
    for p in $all; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$p"
    done
    rm -rf "$WORK"
}
trap _cleanup EXIT

ok() { echo "  ok: $*"; }
fail() {
    echo "  FAIL: $*"
    echo "$CHAPTER/$NAME: FAILED"
    exit 1
}
# Nothing to prove on this machine (no root, no tool): say so in the summary, exit 0.
skip() {
    echo "$CHAPTER/$NAME: skipped: $*"
    exit 0
}
is_root() { [ "$(id -u)" -eq 0 ]; }

_now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

# The chapter's reference programs and the helper library, built if needed (quiet when up to date).
make -s --no-print-directory -C "$ROOT" "build-$NUM" >/dev/null || fail "make build-$NUM failed"

ref_bin() { echo "$ROOT/$CHAPTER/$1"; }

build_cpp() {  # build_cpp SRC OUT [extra flags]
    local src=$1 out=$2
    shift 2
    (cd "$ROOT" && $CXX -std=c++20 -O1 -g -Wall -Wextra -Icommon -D_GNU_SOURCE "$@" \
        -I"$(dirname "$src")" -I"$CHAPTER" "$src" "$LIB" -pthread -o "$out") \
        >"$WORK/build-$(basename "$out").log" 2>&1 ||
        { cat "$WORK/build-$(basename "$out").log" | head -20; fail "$src does not compile"; }
}

# use_solution PROG...: what make grade-NN built for this solution (scripts/check-grades grades it
# first), or a fresh build when that is missing or older than the source. Sets SERVER, CLIENT, ...
use_solution() {
    local prog built var
    for prog in "$@"; do
        built=$ROOT/build/grade/$NUM/$NAME/bin/$prog
        if ! [ -x "$built" ] || ! [ "$built" -nt "$SOL_DIR/$prog.cpp" ]; then
            mkdir -p "$WORK/bin"
            built=$WORK/bin/$prog
            build_cpp "$SOL_DIR/$prog.cpp" "$built"
        fi
        var=$(echo "$prog" | tr 'a-z-' 'A-Z_')
        printf -v "$var" '%s' "$built"
    done
}

mutate() {  # mutate FILE PERL-SUBSTITUTION
    local file=$1 expr=$2 before
    before=$(cksum <"$file")
    perl -0pi -e "$expr" "$file"
    [ "$(cksum <"$file")" != "$before" ] || fail "the edit '$expr' changed nothing in $file (the reference moved on?)"
}

# A copy of the chapter's reference sources (every .cpp and .hpp) in a new directory.
copy_reference() {  # copy_reference DIR
    mkdir -p "$1"
    cp "$ROOT/$CHAPTER"/*.cpp "$1/"
    cp "$ROOT/$CHAPTER"/*.hpp "$1/" 2>/dev/null
    rm -f "$1/bench.cpp" "$1/loadgen.cpp"
}

grade_dir() {  # grade_dir DIR: the report in $WORK/grade.txt, the score line echoed
    GRADE_OUT=$WORK/grade-out make -s --no-print-directory -C "$ROOT" "grade-$NUM" \
        STUDENT="$1" >"$WORK/grade.txt" 2>"$WORK/grade.err"
    tail -n 1 "$WORK/grade.txt"
}

# What the last grade_dir built: $WORK/grade-out/bin/PROG.
graded_bin() { echo "$WORK/grade-out/bin/$1"; }

expect_fail() {  # expect_fail TEST: the FAIL line and its reason are printed
    local line
    line=$(grep -A1 -F "  FAIL  $1" "$WORK/grade.txt") || {
        sed 's/^/    | /' "$WORK/grade.txt" | tail -n 30
        fail "expected $1 to FAIL"
    }
    ok "FAIL $1"
    echo "        $(echo "$line" | sed -n 2p | sed 's/^ *//' | cut -c1-160)"
}

start() {  # start NAME CMD...: background, output in $WORK/NAME.log, pid in $LAST_PID
    local name=$1  # stdin: /dev/null, or the file (a FIFO) named by START_STDIN
    shift
    "$@" >"$WORK/$name.log" 2>&1 <"${START_STDIN:-/dev/null}" &
    LAST_PID=$!
    _pids+=("$LAST_PID")
    echo "$LAST_PID" >>"$WORK/.pids"  # seen by _cleanup even when start ran in a subshell
}

wait_log() {  # wait_log NAME REGEX [SECONDS]
    local name=$1 re=$2 limit=$(($(_now_ms) + ${3:-10} * 1000))
    until grep -qE -- "$re" "$WORK/$name.log" 2>/dev/null; do
        [ "$(_now_ms)" -lt "$limit" ] || {
            sed 's/^/    | /' "$WORK/$name.log" 2>/dev/null | tail -n 15
            fail "$name never printed /$re/ within ${3:-10} s"
        }
        sleep 0.02
    done
}

wait_gone() {  # wait_gone PID [SECONDS]
    local limit=$(($(_now_ms) + ${2:-10} * 1000))
    while kill -0 "$1" 2>/dev/null; do
        [ "$(_now_ms)" -lt "$limit" ] || fail "process $1 still runs after ${2:-10} s"
        sleep 0.02
    done
}

# clean_exec CMD...: exec CMD with nothing but stdin, stdout and stderr open (the shell running a
# check may hold more, and CMD would inherit them). Only as start's command: it replaces the shell.
clean_exec() {
    exec python3 -c 'import os, sys; os.closerange(3, 1 << 16); os.execvp(sys.argv[1], sys.argv[1:])' "$@"
}

kill9() {  # kill9 PID: SIGKILL a process we started, and reap it (no "Killed" note from bash)
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# A socket path in $WORK (short enough for sun_path).
sock_path() { echo "$WORK/$1.sock"; }
