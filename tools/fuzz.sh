#!/usr/bin/env bash
# Run every libFuzzer target of a -Dfuzz=true build for FUZZ_SECONDS each.
#
#   tools/fuzz.sh BUILD_DIR
#
# Seeds come from tests/fuzz/make_corpus.py OUTDIR, which writes seed files
# either straight into OUTDIR or into OUTDIR/<target>/ per fuzz target; a
# per-target directory is preferred when it exists. The seeds are written from
# the repository alone, and BUILD_DIR/corpus-run/<target>/ (new inputs found
# while fuzzing) starts empty each run unless FUZZ_KEEP_CORPUS=1, so a run
# depends on nothing but the checkout. The HTTP targets get
# tests/fuzz/http.dict, fuzz_websocket tests/fuzz/websocket.dict. Crashes,
# leaks, inputs taking over FUZZ_TIMEOUT seconds and out-of-memory go to
# BUILD_DIR/artifacts/ and fail the run, as does a build without any target.
set -euo pipefail

build=${1:?usage: tools/fuzz.sh BUILD_DIR}
python=${PYTHON:-/usr/bin/python3}
seconds=${FUZZ_SECONDS:-60}
timeout=${FUZZ_TIMEOUT:-10}
root=$(cd "$(dirname "$0")/.." && pwd)

seeds="$build/corpus-seed"
rm -rf "$seeds"
mkdir -p "$seeds" "$build/artifacts"
"$python" "$root/tests/fuzz/make_corpus.py" "$seeds"

mapfile -t targets < <(find "$build/tests/fuzz" -maxdepth 1 -type f -perm -u+x -name 'fuzz_*' | sort)
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no fuzz_* executables under $build/tests/fuzz" >&2
  exit 1
fi

failed=0
for t in "${targets[@]}"; do
  name=$(basename "$t")
  seed="$seeds"
  for d in "$seeds/$name" "$seeds/${name#fuzz_}"; do
    if [ -d "$d" ]; then seed="$d"; break; fi
  done
  dict=()
  case $name in
    fuzz_parser | fuzz_chunked | fuzz_proxy) dict=(-dict="$root/tests/fuzz/http.dict") ;;
    fuzz_websocket) dict=(-dict="$root/tests/fuzz/websocket.dict") ;;
  esac
  work="$build/corpus-run/$name"
  if [ "${FUZZ_KEEP_CORPUS:-0}" != 1 ]; then
    rm -rf "$work"
  fi
  mkdir -p "$work"
  echo "fuzz: $name for ${seconds}s (seeds: $seed${dict:+, ${dict[0]#-dict=}})"
  if ! "$t" -max_total_time="$seconds" -timeout="$timeout" -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$build/artifacts/$name-" "$work" "$seed"; then
    echo "fuzz: $name FAILED (artifacts in $build/artifacts)" >&2
    failed=1
  fi
done
exit $failed
