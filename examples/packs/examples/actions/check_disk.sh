#!/bin/sh
# Usage: check_disk.sh [--threshold=N] [PATH]
# Squall (like StackStorm) passes named parameters as --name=value and
# positional parameters after them; accept them in any order.
set -eu

threshold=90
path=/
for arg in "$@"; do
    case "$arg" in
        --threshold=*) threshold="${arg#--threshold=}" ;;
        --*) echo "unknown option: $arg" >&2; exit 2 ;;
        *) path="$arg" ;;
    esac
done

case "$threshold" in
    ''|*[!0-9]*) echo "threshold must be a whole number, got '$threshold'" >&2; exit 2 ;;
esac

# POSIX df output: the fifth column of the second line is "NN%".
used=$(df -P -- "$path" | awk 'NR == 2 { sub(/%$/, "", $5); print $5 }')
if [ -z "$used" ]; then
    echo "could not read disk usage for $path" >&2
    exit 2
fi

status=ok
if [ "$used" -ge "$threshold" ]; then
    status=full
fi

# Escape backslashes and double quotes so the path is valid inside JSON.
json_path=$(printf '%s' "$path" | sed 's/\\/\\\\/g; s/"/\\"/g')
printf '{"path": "%s", "used_percent": %s, "threshold": %s, "status": "%s"}\n' \
    "$json_path" "$used" "$threshold" "$status"

[ "$status" = ok ]
