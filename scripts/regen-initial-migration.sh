#!/usr/bin/env bash
# Before the first release the schema has one migration, 0001. After a model change, rewrite it
# from the models (a test fails while migration and models differ). After a release, add
# migrations with `alembic revision --autogenerate` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
versions=control_plane/db/migrations/versions
tmp=$(mktemp -d)
rm -f "$versions"/0001_*.py
ORGPLANE_DATA_DIR="$tmp" .venv/bin/python - <<'PY'
import asyncio
from control_plane.db.engine import make_engine
from control_plane.db.migrate import autogenerate
from control_plane.settings import Settings
s = Settings()
s.server.data_dir.mkdir(parents=True, exist_ok=True)
asyncio.run(autogenerate(make_engine(s.database_url), "initial schema"))
PY
generated=$(ls "$versions"/*_initial_schema.py)
rev=$(basename "$generated" | cut -d_ -f1)
sed "s/$rev/0001/g; s/^Create Date: .*/Create Date: (regenerated)/" "$generated" > "$versions/0001_initial_schema.py"
rm -f "$generated"
rm -rf "$tmp"
echo "rewrote $versions/0001_initial_schema.py"
