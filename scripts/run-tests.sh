#!/usr/bin/env bash
# Runs the test suite with Node's test runner (TypeScript through tsx). Arguments narrow it to files,
# run one after another.
#
# The whole suite runs in two lanes at once (a 2-vCPU machine spends most of a test waiting on servers,
# timers and sockets): the media lane holds the files that push real-time video and audio (avatars,
# relays, browsers, chaos), one at a time, so no two of them compete for the CPU; the other lane runs
# everything else. Every test starts its own servers on free ports, so the lanes share nothing.
# TEST_LANES=1 runs the whole suite in one lane (serially). Each line of output is prefixed with its lane.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
export NODE_ENV=test

run() { # files...
  node --import tsx --test --test-concurrency=1 --test-timeout="${TEST_TIMEOUT_MS:-600000}" --test-reporter=spec "$@"
}

if [ "$#" -gt 0 ]; then
  run "$@"
  exit
fi

mapfile -t all < <(find test -name '*.test.ts' | sort)
if [ "${TEST_LANES:-2}" = 1 ]; then
  run "${all[@]}"
  exit
fi

# Real-time media: avatars publishing video, relays, a browser, the LiveKit agent, chaos runs.
MEDIA_LANE=(
  test/chaos.test.ts test/chaos-capacity.test.ts test/demo.test.ts test/light-avatars.test.ts
  test/livekit-agent.test.ts test/relay.test.ts test/relay-handles.test.ts test/restart.test.ts
  test/worker-crash.test.ts
)
media=()
other=()
for f in "${all[@]}"; do
  if [[ " ${MEDIA_LANE[*]} " == *" $f "* ]]; then media+=("$f"); else other+=("$f"); fi
done

started=$(date +%s)
( run "${media[@]}" 2>&1 | sed -u 's/^/[media] /'; exit "${PIPESTATUS[0]}" ) &
media_pid=$!
( run "${other[@]}" 2>&1 | sed -u 's/^/[other] /'; exit "${PIPESTATUS[0]}" ) &
other_pid=$!
status=0
wait "$media_pid" || status=1
wait "$other_pid" || status=1
echo "[run-tests] media lane ${#media[@]} files, other lane ${#other[@]} files; wall $(( $(date +%s) - started )) s; $([ "$status" = 0 ] && echo passed || echo FAILED: see the lines marked ✖ above)"
exit "$status"
