#!/bin/sh
# Usage: deploy_app.sh --version=VERSION [--app_dir=DIR] [--restart_command=CMD]
# Deploys VERSION into DIR/releases/VERSION, switches DIR/current to it in
# one step (a rename), restarts the application if told how, and checks that
# the live release is the one asked for. Prints a JSON summary.
set -eu

version="" app_dir=/srv/shop restart_command=""
for arg in "$@"; do
    case "$arg" in
        --version=*) version="${arg#--version=}" ;;
        --app_dir=*) app_dir="${arg#--app_dir=}" ;;
        --restart_command=*) restart_command="${arg#--restart_command=}" ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done
if [ -z "$version" ]; then
    echo "--version is required" >&2
    exit 2
fi

previous=$(cat "$app_dir/current/VERSION" 2>/dev/null || echo none)
release="$app_dir/releases/$version"
# A real deployment would unpack an artifact here; the example writes the
# version file a release carries.
mkdir -p "$release"
printf '%s\n' "$version" > "$release/VERSION"
# Switch: a new link beside the old one, renamed over it (atomic).
ln -sfn "releases/$version" "$app_dir/current.new"
mv -T "$app_dir/current.new" "$app_dir/current"

if [ -n "$restart_command" ]; then
    sh -c "$restart_command"
fi

live=$(cat "$app_dir/current/VERSION")
if [ "$live" != "$version" ]; then
    echo "deployed $version but $app_dir/current is $live" >&2
    exit 1
fi
printf '{"version": "%s", "previous": "%s", "app_dir": "%s"}\n' "$version" "$previous" "$app_dir"
