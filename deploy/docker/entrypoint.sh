#!/bin/sh
# The image's entrypoint: runs the command it is given (by default `manage.py serve`).
#
# DJANGO_SECRET_KEY_FILE: when DJANGO_SECRET_KEY is not set, the key is read from this file
# (a Docker secret, a mounted Kubernetes Secret, the key compose.yaml generates).
#
# With SQLite (the image's default database, for a single container on a laptop) it first
# applies the migrations, since no migration job runs for such a container; it stops with a
# clear message when the database's folder is not writable (a read-only root filesystem
# without a volume there). With PostgreSQL it migrates nothing: migrations run once per
# release, before the new replicas start (the Kubernetes Job in deploy/migrate, the
# `migrate` service of compose.yaml), never in each replica.
set -eu

if [ -z "${DJANGO_SECRET_KEY:-}" ] && [ -n "${DJANGO_SECRET_KEY_FILE:-}" ]; then
  DJANGO_SECRET_KEY="$(cat "$DJANGO_SECRET_KEY_FILE")"
  export DJANGO_SECRET_KEY
fi

database=""
case "${DATABASE_URL:-}" in
  "")
    database="db.sqlite3"  # the settings' default, in the working directory
    ;;
  sqlite://*)
    database="${DATABASE_URL#sqlite://}"
    database="${database#/}"      # sqlite:////abs/path -> /abs/path, sqlite:///rel -> rel
    database="${database%%\?*}"
    ;;
esac

if [ -n "$database" ] && [ "$database" != ":memory:" ]; then
  folder="$(dirname "$database")"
  if ! { [ -d "$folder" ] && [ -w "$folder" ]; }; then
    echo "The database is SQLite at $database, but its folder $folder is not writable" \
         "(a read-only root filesystem?). Mount a writable volume at $folder, or set" \
         "DATABASE_URL to a PostgreSQL database (postgres://user:password@host:5432/name)." >&2
    exit 78
  fi
  python manage.py migrate --noinput
fi

exec "$@"
