#!/bin/sh
# A nightly shell job reported to ESS by `ess-callback run`: no Python in the job itself.
#
# Try it with no scheduler at hand (nothing is sent; each callback is printed as a JSON line):
#
#   ess-callback run --dry-run --update-interval 0 --business-error-exit-code 3 -- samples/shell_job.sh
#
# Under ESS the environment carries ESS_BASE_URL, ESS_REQUEST_ID, ESS_REQUEST_HANDLE and the
# credentials, and the job is started as
#
#   ess-callback run --business-error-exit-code 3 --timeout 3600 -- ./shell_job.sh
#
# How it ends: exit 0 is SUCCESS (WARNING after a WARNING line), exit 3 BUSINESS_ERROR, any
# other failure ERROR with the end of stderr in the message. Try SAMPLE_SKIP=2 (WARNING),
# SAMPLE_PERIOD_CLOSED=1 (BUSINESS_ERROR) and SAMPLE_CRASH=1 (ERROR).
set -eu

# Progress lines go to the pipe the wrapper opened (a descriptor number below 10, so that
# any POSIX shell can redirect to it); run without the wrapper, they go nowhere.
report() {
    if [ -n "${ESS_CALLBACK_FD:-}" ]; then
        echo "$*" >&"$ESS_CALLBACK_FD"
    fi
}

if [ -n "${SAMPLE_PERIOD_CLOSED:-}" ]; then
    echo "accounting period 2026-10 is closed; nothing to extract" >&2
    exit 3 # listed with --business-error-exit-code 3: BUSINESS_ERROR, no retry
fi

rows=0
for batch in 1 2 3 4; do
    rows=$((rows + 250))
    report "UPDATE extracted $rows of 1000 rows"
    if [ -n "${SAMPLE_CRASH:-}" ] && [ "$batch" -eq 2 ]; then
        echo "source database unreachable after $rows rows" >&2
        exit 1 # any other code: ERROR, with this line in the message
    fi
done

skipped=${SAMPLE_SKIP:-0}
if [ "$skipped" -gt 0 ]; then
    report "WARNING $skipped rows skipped (bad dates)"
fi
echo "extracted $rows rows"
