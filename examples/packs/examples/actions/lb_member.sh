#!/bin/sh
# Usage: lb_member.sh --pool=POOL --member=MEMBER --operation=drain|undrain [--state_dir=DIR]
# A simulated load balancer: the state of each member of a pool is a file,
# and every change is a line of the pool's log. Prints a JSON summary.
set -eu

pool="" member="" operation="" state_dir=/tmp/squall-lb
for arg in "$@"; do
    case "$arg" in
        --pool=*) pool="${arg#--pool=}" ;;
        --member=*) member="${arg#--member=}" ;;
        --operation=*) operation="${arg#--operation=}" ;;
        --state_dir=*) state_dir="${arg#--state_dir=}" ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

case "$operation" in
    drain) state=draining ;;
    undrain) state=active ;;
    *) echo "operation must be drain or undrain, got '$operation'" >&2; exit 2 ;;
esac
if [ -z "$pool" ] || [ -z "$member" ]; then
    echo "--pool and --member are required" >&2
    exit 2
fi

mkdir -p "$state_dir/$pool"
was=$(cat "$state_dir/$pool/$member" 2>/dev/null || echo active)
# Written aside, then renamed: a reader never sees a half-written state.
printf '%s\n' "$state" > "$state_dir/$pool/.$member.tmp"
mv "$state_dir/$pool/.$member.tmp" "$state_dir/$pool/$member"
# One short line per change, appended: lines from members changing at the
# same time do not mix.
printf '%s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "$member" "$operation" >> "$state_dir/$pool.log"

printf '{"pool": "%s", "member": "%s", "state": "%s", "was": "%s"}\n' "$pool" "$member" "$state" "$was"
