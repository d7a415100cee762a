#!/usr/bin/env bash
# Dagster's production stack on this machine, in the foreground: the code location as a
# gRPC server, dagster-webserver, dagster-daemon and `qbo-pipeline serve`, on the
# repository's deploy/dagster.yaml (PostgreSQL storage) in a real DAGSTER_HOME.
# Ctrl-C or SIGTERM stops all of it. See docs/deploy.md.
#
#   DAGSTER_POSTGRES_URL   the instance's server; unset: a throwaway one, gone on exit
#   QBO_STACK_DIR          state (default .qbo/stack); DAGSTER_HOME defaults under it
#   DAGSTER_WEBSERVER_PORT 3000, DAGSTER_GRPC_PORT 4266, QBO_SERVICE_PORT 8000
#   QBO_TLS_CERT/KEY       serve HTTPS from `qbo-pipeline serve` itself
# The token store, warehouse and QuickBooks settings are the usual QBO_* and
# QUICKBOOKS_* variables (README.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ -z "${QBO_PYTHON:-}" ]; then
    QBO_PYTHON="$root/.venv/bin/python"
    [ -x "$QBO_PYTHON" ] || make -C "$root" --no-print-directory .venv/.installed
fi
if [ ! -x "$QBO_PYTHON" ]; then
    echo "run.sh: QBO_PYTHON=$QBO_PYTHON is not an executable Python with qbo-pipeline installed" >&2
    exit 2
fi
cd "$root"
exec "$QBO_PYTHON" -m qbo_pipeline.commands.local_stack
