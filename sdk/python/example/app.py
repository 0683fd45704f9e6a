"""A whole orgplane org instance in one FastAPI file, with orgplane-instance-sdk.

* ``GET /api/v1/me``: the caller's org-token claims.
* ``GET /api/v1/notes``: the org's notes; ``POST /api/v1/notes`` ``{"text": "..."}`` adds one
  (needs the ``org:write`` scope). Notes live in SQLite in ``ORGPLANE_DATA_DIR``.

The SDK does the rest: Host and token checks, ``/healthz`` and ``/readyz``, heartbeats.
Run: ``python app.py`` (listens on ``ORGPLANE_BIND_HOST:ORGPLANE_PORT``).
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from orgplane_sdk import ConfigError, OrgInstance
from pydantic import BaseModel, Field

DB_PATH = "notes.db"


def connect() -> sqlite3.Connection:
    db = sqlite3.connect(org.config.data_dir / DB_PATH, timeout=5)
    db.execute(
        "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, author TEXT NOT NULL,"
        " text TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    return db


async def health() -> tuple[bool, bool]:
    """(database works, Redis works): this app has no Redis."""
    try:
        with closing(connect()) as db:
            db.execute("SELECT 1")
        return True, True
    except sqlite3.Error:
        return False, True


try:
    org = OrgInstance.from_env(health=health)
except ConfigError as exc:  # name every problem, start nothing
    raise SystemExit(f"orgplane example: bad environment: {exc}") from None
api = FastAPI(title="orgplane example org instance", openapi_url=None)


class NewNote(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


def problem(status: int, code: str, detail: str) -> JSONResponse:
    body = {"type": f"https://orgplane.dev/problems/{code}", "status": status, "code": code}
    body["detail"] = detail
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


@api.exception_handler(RequestValidationError)
async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    return problem(400, "validation_error", "The request body is not a valid note.")


@api.get("/api/v1/me")
def me(request: Request) -> dict[str, Any]:
    return dict(request.state.claims)


@api.get("/api/v1/notes")
def notes() -> dict[str, Any]:
    with closing(connect()) as db:
        rows = db.execute("SELECT id, author, text, created_at FROM notes ORDER BY id").fetchall()
    keys = ("id", "author", "text", "created_at")
    return {"items": [dict(zip(keys, row, strict=True)) for row in rows]}


@api.post("/api/v1/notes", status_code=201, response_model=None)
def add_note(note: NewNote, request: Request) -> dict[str, Any] | JSONResponse:
    claims = request.state.claims
    if "org:write" not in claims.get("scope", "").split():
        return problem(403, "insufficient_scope", "Writing notes needs the org:write scope.")
    with closing(connect()) as db, db:
        cursor = db.execute(
            "INSERT INTO notes (author, text) VALUES (?, ?)", (claims["sub"], note.text)
        )
    return {"id": cursor.lastrowid, "author": claims["sub"], "text": note.text}


app = org.wrap(api)

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # No access log: a WebSocket's query string may carry a token.
    uvicorn.run(
        app,
        host=org.config.bind_host,
        port=org.config.port,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
