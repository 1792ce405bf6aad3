#!/usr/bin/env bash
# bench/store: no-op trials per second through the sweep runtime on the
# SQLite store and on the PostgreSQL store (one job, then STORE_JOBS jobs on
# one sweep), against Optuna's RDBStorage on the same PostgreSQL server
# (issue 17, section 5). Prints one JSON line per measurement on stdout, the
# last one the summary; build output and progress go to stderr.
#
#   bench/store/run.sh
#   XPSCALE_BUILD_DIR=/tmp/b bench/store/run.sh      # build dir (default build/)
#   STORE_BUILD=0 XPSCALE_BUILD_DIR=/tmp/b bench/store/run.sh  # its binaries as they are
#
# Knobs (environment): STORE_TRIALS (3000) no-op trials per xpscale sweep;
# STORE_RANKS (4) ranks of the one-job runs; STORE_JOBS (4) and
# STORE_JOB_RANKS (2) for the many-jobs run; STORE_OPTUNA_TRIALS (1000) and
# STORE_OPTUNA_WORKERS (STORE_RANKS) for Optuna with RandomSampler;
# STORE_OPTUNA_TPE_TRIALS (200, 0 skips) with TPESampler; STORE_REPEATS (3)
# rounds of every measurement; STORE_TIMEOUT (600) seconds per run;
# STORE_PG_STATEMENTS (1) counts statements per trial with
# pg_stat_statements; STORE_KEEP=1 keeps the work dir (the server still
# stops); STORE_BUILD=0 builds nothing and takes bench/dispatch/dispatch_noop
# and launcher/xpscale from the build dir as they are. The build follows scripts/setup: XPSCALE_BUILD_TYPE
# (RelWithDebInfo), XPSCALE_CUDA (AUTO), XPSCALE_WERROR (ON), XPSCALE_JOBS
# (nproc).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

trials=${STORE_TRIALS:-3000}
ranks=${STORE_RANKS:-4}
jobs=${STORE_JOBS:-4}
job_ranks=${STORE_JOB_RANKS:-2}
optuna_trials=${STORE_OPTUNA_TRIALS:-1000}
workers=${STORE_OPTUNA_WORKERS:-$ranks}
tpe_trials=${STORE_OPTUNA_TPE_TRIALS:-200}
repeats=${STORE_REPEATS:-3}
timeout_s=${STORE_TIMEOUT:-600}
count_statements=${STORE_PG_STATEMENTS:-1}
py=/usr/bin/python3 # Debian's, where python3-optuna and python3-psycopg2 live
here=bench/store
pg_server=$root/tests/support/pg-server

if ! "$py" -c 'import optuna, psycopg2, sqlalchemy' 2>/dev/null; then
  echo "run.sh: Optuna, psycopg2 or SQLAlchemy is missing for $py; run scripts/setup" \
    "(or apt-get install python3-optuna python3-psycopg2 python3-sqlalchemy)" >&2
  exit 2
fi

build=${XPSCALE_BUILD_DIR:-build}
if [ "${STORE_BUILD:-1}" != 0 ]; then
  if [ ! -f "$build/build.ninja" ]; then
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${XPSCALE_BUILD_TYPE:-RelWithDebInfo}" \
      -DXPSCALE_CUDA="${XPSCALE_CUDA:-AUTO}" -DXPSCALE_WERROR="${XPSCALE_WERROR:-ON}" >&2
  fi
  cmake --build "$build" -j "${XPSCALE_JOBS:-$(nproc)}" --target dispatch_noop xpscale >&2
fi
build=$(cd "$build" && pwd)
noop=$build/bench/dispatch/dispatch_noop
xpscale=$build/launcher/xpscale

work=$(mktemp -d "${TMPDIR:-/tmp}/xpscale-store.XXXXXX")
# Directly under /tmp: as root the server runs as another user, who must be
# able to reach it (tests/support/pg-server).
pgdir=$(mktemp -d /tmp/xpscale-store-pg.XXXXXX)
running=() # pids of jobs in flight, ended at exit
cleanup() {
  local p
  for p in "${running[@]}"; do kill "$p" 2>/dev/null || true; done
  "$pg_server" stop "$pgdir" >/dev/null 2>&1 || true
  rm -rf "$pgdir"
  if [ "${STORE_KEEP:-0}" = 1 ]; then echo "run.sh: work dir $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mpi=(mpiexec --oversubscribe)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
emit() { echo "$1" | tee -a "$work/lines.jsonl"; }
psql_su() { "$pg_server" psql "$pgdir" -d postgres -qAt "$@"; }

echo "run.sh: starting a throwaway PostgreSQL server" >&2
url=$("$pg_server" start "$pgdir" --owner $$)
PGPASSWORD=$(cat "$pgdir/password")
export PGPASSWORD
# Optuna gets a database of its own: its tables (studies, trials, ...) would
# otherwise land in the store's schema `xpscale`, which is first on the
# search path ("$user") of the role xpscale, and collide with ours.
psql_su -c "CREATE DATABASE optuna OWNER xpscale" >/dev/null
optuna_url="postgresql+psycopg2://${url#postgresql://}"
optuna_url="${optuna_url%/*}/optuna"

# Statements per trial: pg_stat_statements needs a restart to load.
if [ "$count_statements" = 1 ]; then
  if psql_su -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null &&
    "$pg_server" pause "$pgdir" >&2 && "$pg_server" resume "$pgdir" >&2 &&
    psql_su -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null; then
    :
  else
    echo "run.sh: pg_stat_statements unavailable; no statement counts" >&2
    count_statements=0
  fi
fi
stats_reset() {
  if [ "$count_statements" = 1 ]; then psql_su -c "SELECT pg_stat_statements_reset()" >/dev/null; fi
}
# "CALLS EXEC_MS" of the role xpscale since the last reset (empty: not
# counted); its three statements of most server time go to file $1.
stats_read() {
  if [ "$count_statements" = 1 ]; then
    psql_su -F $'\t' -c "SELECT calls, round(total_exec_time::numeric, 1),
      left(regexp_replace(query, '\s+', ' ', 'g'), 120) FROM pg_stat_statements s
      JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'xpscale'
      ORDER BY total_exec_time DESC LIMIT 3" >"$1" || true
    psql_su -F ' ' -c "SELECT coalesce(sum(calls), 0), round(coalesce(sum(total_exec_time), 0)::numeric, 3)
      FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'xpscale'" || true
  fi
}

# One no-op sweep of $trials trials: N jobs of R ranks each, started at once
# with the same config (a fresh sweep name and out_dir per call) and the
# same store. The caller's clock runs from the first launch to the last
# exit; analyze.py also times it on the store's clock (sweep created ->
# last attempt ended) and counts the trials from `xpscale export`.
pg_jobs_refused=""
run_sweep() { # label store(sqlite|postgresql) jobs ranks_per_job repeat
  local label=$1 store=$2 n=$3 r=$4 rep=$5
  local out="$work/$label-r$rep"
  cat >"$out.json" <<EOF
{"method": "random", "trials": $trials, "seed": 1, "name": "store-$label-r$rep-$$",
 "parameters": {"x": {"distribution": "uniform", "min": 0, "max": 1}},
 "resources": {"ranks_per_trial": 1}, "out_dir": "$out"}
EOF
  local args=(--sweep "$out.json" --quiet --store sqlite)
  [ "$store" = postgresql ] && args=(--sweep "$out.json" --quiet --store "$url")
  [ "$store" = postgresql ] && stats_reset
  local j rc t0 t1 note="" statements=""
  running=()
  t0=$(now)
  for ((j = 0; j < n; ++j)); do
    timeout -k 10 "$timeout_s" "${mpi[@]}" -n "$r" "$noop" "${args[@]}" 2>"$out.job$j.err" &
    running+=($!)
  done
  for ((j = 0; j < n; ++j)); do
    rc=0
    wait "${running[$j]}" || rc=$?
    [ "$rc" -eq 0 ] && continue
    if [ "$rc" -eq 2 ] && grep -q "is being run by another job" "$out.job$j.err"; then
      [ -n "$note" ] || note="$n jobs on one sweep: this build refuses a second job (exit 2: \"is being run by another job now\"); pg_vs_optuna uses the one-job figure (pg1)"
      pg_jobs_refused=1
    else
      [ -n "$note" ] || note="job $j of $n exited with status $rc"
      echo "run.sh: $label: job $j exited with status $rc:" >&2
      tail -n 5 "$out.job$j.err" >&2
    fi
  done
  t1=$(now)
  running=()
  [ "$store" = postgresql ] && statements=$(stats_read "$out.top")
  "$xpscale" export "$out" >"$out.export" 2>"$out.export.err" ||
    { [ -n "$note" ] || note="xpscale export failed: $(head -c 300 "$out.export.err")"; }
  emit "$("$py" $here/analyze.py sweep --label "$label" --export "$out.export" \
    --outer-s "$(elapsed "$t0" "$t1")" --jobs "$n" --ranks "$r" --store "$store" --repeat "$rep" \
    ${statements:+--statements "$statements" --top "$out.top"} ${note:+--note "$note"})"
  [ "${STORE_KEEP:-0}" = 1 ] || rm -rf "$out"
}

optuna_run() { # label sampler trials repeat
  local line statements=""
  stats_reset
  line=$("$py" $here/optuna_peer.py --url "$optuna_url" --study "$1-r$4" --trials "$3" \
    --workers "$workers" --sampler "$2" --label "$1") || true
  statements=$(stats_read "$work/$1-r$4.top")
  [ -n "$line" ] || line="{\"bench\": \"store\", \"measure\": \"$1\", \"error\": \"optuna_peer.py printed nothing\"}"
  emit "$(echo "$line" | "$py" $here/analyze.py annotate --repeat "$4" \
    ${statements:+--statements "$statements" --top "$work/$1-r$4.top"})"
}

# The measurements interleave, round by round, so that the machine's other
# load falls on all of them alike.
for ((rep = 1; rep <= repeats; ++rep)); do
  echo "run.sh: round $rep/$repeats: $trials no-op trials, 1 job of $ranks ranks, SQLite" >&2
  run_sweep sqlite sqlite 1 "$ranks" "$rep"
  echo "run.sh: round $rep/$repeats: the same on PostgreSQL" >&2
  run_sweep pg1 postgresql 1 "$ranks" "$rep"
  if [ -z "$pg_jobs_refused" ]; then
    echo "run.sh: round $rep/$repeats: $jobs jobs of $job_ranks ranks on one PostgreSQL sweep" >&2
    run_sweep pg postgresql "$jobs" "$job_ranks" "$rep"
  fi
  echo "run.sh: round $rep/$repeats: Optuna, $optuna_trials trials, $workers workers, RandomSampler" >&2
  optuna_run optuna_pg random "$optuna_trials" "$rep"
  if [ "$tpe_trials" -gt 0 ]; then
    echo "run.sh: round $rep/$repeats: Optuna, $tpe_trials trials, $workers workers, TPESampler" >&2
    optuna_run optuna_pg_tpe tpe "$tpe_trials" "$rep"
  fi
done

"$py" $here/analyze.py summary "$work/lines.jsonl" --repeats "$repeats" --trials "$trials" \
  --optuna-trials "$optuna_trials" --tpe-trials "$tpe_trials" --jobs "$jobs"
